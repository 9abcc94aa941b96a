//! `dbfleet import --from HOST`: the inventory of a fleet dbfleet did not build, read from
//! its running servers over SSH (`crate::import`), printed on stdout. Reads only: it
//! changes nothing on any host and writes no file.

use crate::engine::Options;
use crate::error::{Error, Exit};
use crate::import::inventory::Options as ImportOptions;
use crate::inventory::{Host, HostKeyPolicy, SshSettings};
use crate::playbook::Library;
use crate::report;
use crate::transport::{SshHost, Transport};

/// `dbfleet import`: discovers the topology from `what.from` and prints the inventory.
/// `policy`: how unknown host keys are taken (the inventory's `host_key_checking`).
///
/// Errors: [`Error::Refused`] from discovery (the server named cannot be read, the
/// topology is not one primary with replicas); playbook loading errors.
pub fn run(opts: &Options, what: ImportOptions, policy: HostKeyPolicy) -> Result<Exit, Error> {
    let lib = Library::load(opts.playbooks.as_deref(), opts.templates.as_deref())?;
    let ssh = SshSettings {
        user: what.ssh_user.clone(),
        port: what.ssh_port,
        identity: what.ssh_identity.as_ref().map(Into::into),
        config: what.ssh_config.as_ref().map(Into::into),
    };
    let timeout = opts.connect_timeout;
    let topology = crate::engine::runtime()?.block_on(crate::import::discover(
        &what.from,
        |address: String| {
            let host = Host {
                name: address.clone(),
                address,
                roles: Vec::new(),
                server_id: None,
                source: None,
                candidate: true,
                cluster: String::new(),
                ssh: ssh.clone(),
                vars: Default::default(),
            };
            async move {
                SshHost::connect(&host, policy, timeout)
                    .await
                    .map(|h| Box::new(h) as Box<dyn Transport>)
                    .map_err(|e| e.to_string())
            }
        },
    ))?;
    report::print(&crate::import::inventory::write(
        &topology,
        &what,
        &lib.defaults,
    ));
    Ok(Exit::Ok)
}
