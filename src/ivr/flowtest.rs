//! Running the `tests:` of every flow, as `switchboard check` does.

use super::check::{Diagnostic, Severity};
use super::interp::{AccountKey, PinOutcome};
use super::model::{Expect, FlowSet, StubAccount};
use super::prompts::PromptIndex;
use super::sim::{simulate_with, Outcome, Services, SimReport};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct TestResult {
    pub flow: String,
    pub name: String,
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
    /// Empty when the test passed; otherwise one "expected …, got …" per failed expectation.
    pub failures: Vec<String>,
    /// The failure as a check error at the test's `name`; None when it passed.
    pub failure: Option<Diagnostic>,
    pub report: SimReport,
}

impl TestResult {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The test's `accounts:` in front of the caller's services (which still answer lookups).
struct StubAccounts<'a> {
    accounts: &'a [StubAccount],
    inner: &'a mut dyn Services,
}

impl Services for StubAccounts<'_> {
    fn verify_pin(&mut self, key: &AccountKey, pin: &str) -> PinOutcome {
        let found = self.accounts.iter().find(|a| match key {
            AccountKey::Phone(p) => a.phones.iter().any(|x| x == p),
            AccountKey::Id(id) => a.id == *id,
        });
        match found {
            None => PinOutcome::Invalid,
            Some(a) if a.locked => PinOutcome::Locked,
            Some(a) if a.pin.expose() == pin => PinOutcome::Ok {
                account_id: a.id.clone(),
                fields: a.fields.clone(),
            },
            Some(_) => PinOutcome::Invalid,
        }
    }

    fn lookup(
        &mut self,
        method: &str,
        url: &str,
        body: Option<&str>,
    ) -> Result<serde_json::Value, String> {
        self.inner.lookup(method, url, body)
    }
}

fn list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

fn compare(expect: &Expect, r: &SimReport) -> Vec<String> {
    let mut failures = Vec::new();
    let got = &r.outcome;
    let queue = match r.queued.as_ref().unwrap_or(got) {
        Outcome::Queue { name, priority, .. } => Some((name.as_str(), *priority)),
        _ => None,
    };
    if let Some(want) = &expect.survey {
        let score = r.vars.get("survey").and_then(|v| v.parse::<i64>().ok());
        if score != *want {
            let show = |s: &Option<i64>| s.map_or("none".to_string(), |v| v.to_string());
            failures.push(format!(
                "expected survey score {}, got {}",
                show(want),
                show(&score)
            ));
        }
    }
    if let Some(q) = &expect.queue {
        if queue.map(|(n, _)| n) != Some(q.as_str()) {
            failures.push(format!("expected queue `{q}`, got: {got}"));
        }
    }
    if let Some(p) = expect.priority {
        match queue {
            Some((_, got_p)) if got_p == p => {}
            Some((_, got_p)) => failures.push(format!("expected priority {p}, got {got_p}")),
            None => failures.push(format!("expected priority {p}, got: {got}")),
        }
    }
    if let Some(t) = &expect.transfer {
        if !matches!(got, Outcome::Transfer { target } if target == t) {
            failures.push(format!("expected a transfer to {t}, got: {got}"));
        }
    }
    if let Some(q) = &expect.callback {
        if !matches!(got, Outcome::Callback { queue } if queue == q) {
            failures.push(format!("expected a callback in `{q}`, got: {got}"));
        }
    }
    if let Some(word) = &expect.outcome {
        let reached_queue = word == "queue" && r.queued.is_some();
        if !(got.matches(word) || reached_queue) {
            failures.push(format!("expected the call to end with {word}, got: {got}"));
        }
    }
    if let Some(ends) = &expect.path_ends {
        if !r.path.ends_with(ends) {
            failures.push(format!(
                "expected the path to end with {}, got {}",
                list(ends),
                list(&r.path)
            ));
        }
    }
    if let Some(path) = &expect.path {
        if &r.path != path {
            failures.push(format!(
                "expected path {}, got {}",
                list(path),
                list(&r.path)
            ));
        }
    }
    if let Some(prompts) = &expect.prompts {
        if &r.prompts != prompts {
            failures.push(format!(
                "expected prompts {}, got {}",
                list(prompts),
                list(&r.prompts)
            ));
        }
    }
    for (name, want) in &expect.vars {
        let have = r.vars.get(name).map(String::as_str).unwrap_or("");
        if have != want {
            failures.push(format!("expected {name} = \"{want}\", got \"{have}\""));
        }
    }
    if let Some(auth) = expect.auth {
        if r.auth != auth {
            failures.push(format!(
                "expected auth {}, got {}",
                auth.as_str(),
                r.auth.as_str()
            ));
        }
    }
    failures
}

/// Runs every test of every flow. `services_factory` gives the services a test uses when it
/// stubs no accounts (normally the real accounts file) and for lookups it does not stub.
pub fn run_tests(
    flows: &FlowSet,
    prompts: &Arc<PromptIndex>,
    services_factory: &mut dyn FnMut() -> Box<dyn Services>,
) -> Vec<TestResult> {
    let mut results = Vec::new();
    for flow in flows.flows() {
        for test in &flow.tests {
            let mut services = services_factory();
            let report = match &test.accounts {
                Some(accounts) => {
                    let mut stub = StubAccounts {
                        accounts,
                        inner: services.as_mut(),
                    };
                    simulate_with(
                        flow,
                        prompts,
                        &test.caller,
                        test.at,
                        &test.input,
                        &mut stub,
                        &test.lookups,
                    )
                }
                None => simulate_with(
                    flow,
                    prompts,
                    &test.caller,
                    test.at,
                    &test.input,
                    services.as_mut(),
                    &test.lookups,
                ),
            };
            let failures = compare(&test.expect, &report);
            let failure = (!failures.is_empty()).then(|| {
                Diagnostic::new(
                    &flow.source,
                    test.pos,
                    Severity::Error,
                    format!("test `{}` failed: {}", test.name, failures.join("; ")),
                )
            });
            results.push(TestResult {
                flow: flow.name.clone(),
                name: test.name.clone(),
                file: flow.source.clone(),
                line: test.pos.line,
                column: test.pos.column,
                failures,
                failure,
                report,
            });
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ivr::check::parse_str;
    use crate::ivr::sim::NoServices;
    use std::path::Path;

    const FLOW: &str = r##"
flow: orders
numbers: ["7100"]
language: en
start: login
steps:
  login:
    pin: { account: caller, prompt: enter-pin }
    on_ok: orders
    on_fail: bye
  orders:
    lookup: { url: "https://crm.example/orders?account={{ account.id }}", timeout: 2s }
    next: route
    on_error: agent
  route:
    branch:
      - when: "vars.status == 'shipped'"
        next: shipped
    else: agent
  shipped: { play: shipped, say: { digits: "{{ vars.eta }}" }, next: hangup }
  agent: { transfer: "sip:agent@pbx.example" }
  bye: { play: goodbye, next: hangup }
tests:
  - name: shipped orders hear the ETA
    caller: "+15550001111"
    input: ["2468#"]
    accounts:
      - { id: A-9, phones: ["+15550001111"], pin: "2468", tier: silver }
    lookups:
      orders: { status: shipped, eta: 12 }
    expect:
      path: [login, orders, route, shipped, hangup]
      prompts: [enter-pin, shipped, digits/1, digits/2]
      vars: { account.tier: silver, vars.eta: "12" }
      auth: ok
      outcome: completed
  - name: a CRM outage goes to an agent
    caller: "+15550001111"
    input: ["2468#"]
    accounts: [{ id: A-9, phone: "+15550001111", pin: "2468" }]
    lookups: { orders: error }
    expect: { transfer: "sip:agent@pbx.example", outcome: transfer }
  - name: a locked account never reaches the CRM
    caller: "+15550001111"
    input: ["2468#"]
    accounts: [{ id: A-9, phone: "+15550001111", pin: "2468", locked: true }]
    expect: { path_ends: [bye, hangup], auth: locked, ends: auth_failed }
  - name: wrong on purpose
    caller: "+15550001111"
    input: ["2468#"]
    accounts: [{ id: A-9, phone: "+15550001111", pin: "2468" }]
    lookups: { orders: { status: pending } }
    expect: { prompts: [enter-pin, shipped], outcome: completed, vars: { vars.status: shipped } }
"##;

    fn results() -> Vec<TestResult> {
        let (flow, diags) = parse_str(Path::new("orders.yaml"), FLOW);
        assert!(diags.iter().all(|d| !d.is_error()), "{diags:#?}");
        let mut set = FlowSet::new();
        set.insert(flow.unwrap());
        // Written the way `switchboard check` calls it.
        run_tests(&set, &Arc::new(PromptIndex::new()), &mut || {
            Box::new(NoServices)
        })
    }

    #[test]
    fn account_and_lookup_stubs_stand_in_for_the_crm() {
        let r = results();
        assert_eq!(r.len(), 4);
        for t in &r[..3] {
            assert!(t.passed(), "{}\n{}", t.failure.as_ref().unwrap(), t.report);
        }
    }

    #[test]
    fn each_failed_expectation_says_expected_and_got() {
        let r = results();
        let d = r[3].failure.clone().expect("the last test fails");
        assert_eq!((d.line, d.column), (48, 11));
        assert_eq!(
            d.message,
            "test `wrong on purpose` failed: expected the call to end with completed, got: \
             transferred to sip:agent@pbx.example; expected prompts [enter-pin, shipped], got \
             [enter-pin]; expected vars.status = \"shipped\", got \"pending\""
        );
    }
}
