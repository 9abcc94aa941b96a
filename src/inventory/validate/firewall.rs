//! The host firewall: networks, backend, and the operator's own SSH access.

use super::*;

pub(super) fn check_firewall(
    c: &mut Checker,
    f: &Spanned<crate::inventory::schema::RawFirewall>,
) -> Option<crate::inventory::Firewall> {
    let r = &f.value;
    let backend = match &r.backend {
        None => "nftables".to_string(),
        Some(b) if crate::inventory::FIREWALL_BACKENDS.contains(&b.value.as_str()) => {
            b.value.clone()
        }
        Some(b) => {
            let s = c.span(b);
            c.push(
                Problem::at(
                    format!("firewall backend `{}` is not supported", b.value),
                    s,
                    "here",
                )
                .help("use `nftables` (Debian's default) or `ufw` (the seed's)"),
            );
            String::new()
        }
    };
    if r.admin_networks.is_empty() {
        let s = c.span(f);
        c.push(
            Problem::at("the firewall needs admin_networks", s, "here")
                .help("list the networks you SSH from, or the firewall would lock you out"),
        );
        return None;
    }
    let mut nets = |list: &[Spanned<String>]| -> Vec<String> {
        let mut out = Vec::new();
        for n in list {
            match n
                .value
                .parse::<ipnet::IpNet>()
                .or_else(|_| n.value.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            {
                Ok(net) => out.push(net.trunc().to_string()),
                Err(_) => {
                    let s = c.span(n);
                    c.push(
                        Problem::at(
                            format!("`{}` is not a network", n.value),
                            s,
                            "not an address or CIDR",
                        )
                        .help("e.g. 10.0.0.0/8 or 192.0.2.7"),
                    );
                }
            }
        }
        out
    };
    let admin_networks = nets(&r.admin_networks);
    let app_networks = nets(&r.app_networks);
    if backend.is_empty() {
        return None;
    }
    Some(crate::inventory::Firewall {
        backend,
        admin_networks,
        app_networks,
    })
}
