//! A scripted transport for unit tests of runbook logic: each host answers a script by
//! the first rule whose marker the script contains, and records what it was asked. Never
//! an end-to-end stand-in: the lab runs the real hosts.

use std::sync::Mutex;

use futures::future::BoxFuture;

use super::{Output, Transport, TransportError};

/// A marker the script contains, and the answers in turn (stdout, or a transport error);
/// the last one repeats.
type Rule = (String, Vec<Result<String, String>>);

/// One host's scripted answers.
pub struct Scripted {
    name: String,
    rules: Mutex<Vec<Rule>>,
    /// Every script run, in order.
    pub seen: Mutex<Vec<String>>,
}

impl Scripted {
    pub fn new(name: &str) -> Scripted {
        Scripted {
            name: name.to_string(),
            rules: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
        }
    }

    /// Answers a script containing `marker` with `stdouts`, one per call, the last one
    /// again once they run out.
    pub fn answer(self, marker: &str, stdouts: &[&str]) -> Scripted {
        self.rules.lock().expect("rules").push((
            marker.to_string(),
            stdouts.iter().map(|s| Ok(s.to_string())).collect(),
        ));
        self
    }

    /// Fails a script containing `marker` as a broken connection would.
    pub fn fail(self, marker: &str, why: &str) -> Scripted {
        self.rules
            .lock()
            .expect("rules")
            .push((marker.to_string(), vec![Err(why.to_string())]));
        self
    }
}

impl Transport for Scripted {
    fn name(&self) -> &str {
        &self.name
    }
    fn run<'a>(&'a self, script: &'a str) -> BoxFuture<'a, Result<Output, TransportError>> {
        self.seen.lock().expect("seen").push(script.to_string());
        let mut rules = self.rules.lock().expect("rules");
        let answer = rules
            .iter_mut()
            .find(|(m, _)| script.contains(m.as_str()))
            .map(|(_, a)| {
                if a.len() > 1 {
                    a.remove(0)
                } else {
                    a[0].clone()
                }
            });
        let out = match answer {
            Some(Ok(stdout)) => Ok(Output {
                code: 0,
                stdout,
                stderr: String::new(),
            }),
            Some(Err(why)) => Err(TransportError::Run(why)),
            None => Ok(Output {
                code: 127,
                stdout: String::new(),
                stderr: format!("{}: no scripted answer", self.name),
            }),
        };
        Box::pin(async move { out })
    }
}
