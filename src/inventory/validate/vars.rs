//! Variables: each checked against the type `playbooks/defaults.yml` declares for it.

use super::*;

pub(super) fn check_vars(
    c: &mut Checker,
    vars: &Entries<Spanned<serde_json::Value>>,
    defaults: &crate::inventory::Defaults,
) -> BTreeMap<String, VarValue> {
    let mut out = BTreeMap::new();
    for (k, v) in &vars.0 {
        if !defaults.values.contains_key(&k.value) {
            let s = c.span(k);
            let help = did_you_mean(&k.value, defaults.values.keys().map(String::as_str))
                .unwrap_or_else(|| "variables are declared in playbooks/defaults.yml".into());
            c.push(
                Problem::at(
                    format!("unknown variable `{}`", k.value),
                    s,
                    "not a variable",
                )
                .help(help),
            );
            continue;
        }
        if v.value.is_object() || v.value.is_array() || v.value.is_null() {
            let s = c.span(v);
            c.push(Problem::at(
                format!("variable `{}` must be a string, number or boolean", k.value),
                s,
                "not a scalar",
            ));
            continue;
        }
        if let Some(t) = defaults.types.get(&k.value)
            && let Err(why) = t.check(&v.value)
        {
            let s = c.span(v);
            c.push(
                Problem::at(format!("variable `{}`: {why}", k.value), s, "wrong value").help(
                    format!("`{}` takes {} (playbooks/defaults.yml)", k.value, t.text),
                ),
            );
            continue;
        }
        out.insert(k.value.clone(), v.value.clone());
    }
    out
}
