//! The services `switchboard simulate` and `switchboard check` give the interpreter: the same
//! accounts file and argon2 hashes as the server, lockout counted in memory (a simulation must not
//! lock a real merchant out), and CRM look-ups done for real by `simulate`, never by `check`.

use std::collections::HashMap;

use crate::auth::Accounts;
use crate::ivr::{AccountKey, PinOutcome, Services};

pub struct OfflineServices {
    accounts: Accounts,
    failures: HashMap<String, u32>,
    max_failures: u32,
    allow_lookups: bool,
}

impl OfflineServices {
    pub fn new(accounts: Accounts, max_failures: u32, allow_lookups: bool) -> Self {
        OfflineServices {
            accounts,
            failures: HashMap::new(),
            max_failures,
            allow_lookups,
        }
    }
}

impl Services for OfflineServices {
    fn verify_pin(&mut self, key: &AccountKey, pin: &str) -> PinOutcome {
        let account = match key {
            AccountKey::Phone(p) => self.accounts.by_phone(p),
            AccountKey::Id(i) => self.accounts.by_id(i),
        };
        let Some(account) = account else {
            return PinOutcome::Invalid;
        };
        let failures = self.failures.entry(account.id.clone()).or_default();
        if *failures >= self.max_failures {
            return PinOutcome::Locked;
        }
        if account.verify_pin(pin) {
            *failures = 0;
            let mut fields = account.fields.clone();
            fields.insert("id".into(), account.id.clone());
            PinOutcome::Ok {
                account_id: account.id.clone(),
                fields,
            }
        } else {
            *failures += 1;
            PinOutcome::Invalid
        }
    }

    fn lookup(
        &mut self,
        method: &str,
        url: &str,
        body: Option<&str>,
    ) -> Result<serde_json::Value, String> {
        if !self.allow_lookups {
            return Err("look-ups are not made by `check`: give the test a `lookups:` stub".into());
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("bad method {method}"))?;
        rt.block_on(async {
            let client = reqwest::Client::new();
            let mut req = client
                .request(method, url)
                .timeout(std::time::Duration::from_secs(5));
            if let Some(b) = body {
                req = req
                    .header("content-type", "application/json")
                    .body(b.to_string());
            }
            let resp = req.send().await.map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                return Err(format!("HTTP {}", resp.status()));
            }
            resp.json().await.map_err(|e| e.to_string())
        })
    }
}
