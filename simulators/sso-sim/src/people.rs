//! The people an identity provider knows, and seeded generators for them.

use chrono::{DateTime, TimeDelta, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One person as the identity provider sees them.
#[derive(Debug, Clone, PartialEq)]
pub struct SsoPerson {
    /// The person's Box `login`: what the client must key its answer by.
    pub box_login: String,
    /// The IdP login (Okta login, Entra userPrincipalName). May differ from `box_login` (an alias).
    pub idp_login: String,
    /// Okta's app user name for the Box app (the AppUser target's `alternateId`); `None` means the
    /// app user name is the Okta login. Entra ignores it.
    pub app_username: Option<String>,
    /// Successful sign-ins to the Box app.
    pub sign_ins: Vec<DateTime<Utc>>,
    /// Failed sign-in attempts to the Box app.
    pub failed: Vec<DateTime<Utc>>,
}

impl SsoPerson {
    /// A person whose IdP login, app user name and Box login are all `login`.
    pub fn new(login: &str) -> SsoPerson {
        SsoPerson {
            box_login: login.to_string(),
            idp_login: login.to_string(),
            app_username: None,
            sign_ins: Vec::new(),
            failed: Vec::new(),
        }
    }

    pub fn signed_in(mut self, at: DateTime<Utc>) -> SsoPerson {
        self.sign_ins.push(at);
        self
    }

    pub fn failed_at(mut self, at: DateTime<Utc>) -> SsoPerson {
        self.failed.push(at);
        self
    }

    /// The latest successful Box sign-in.
    pub fn last_sign_in(&self) -> Option<DateTime<Utc>> {
        self.sign_ins.iter().max().copied()
    }

    /// The name the IdP shows for the person in the Box app.
    pub(crate) fn app_user_name(&self) -> &str {
        self.app_username.as_deref().unwrap_or(&self.idp_login)
    }

    pub(crate) fn display_name(&self) -> String {
        let local = self.box_login.split('@').next().unwrap_or_default();
        local
            .split(['.', '_'])
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// People from `(login, last successful sign-in)` pairs; `None` means never signed in.
pub fn people_from(pairs: &[(&str, Option<DateTime<Utc>>)]) -> Vec<SsoPerson> {
    pairs
        .iter()
        .map(|(login, at)| {
            let p = SsoPerson::new(login);
            match at {
                Some(at) => p.signed_in(*at),
                None => p,
            }
        })
        .collect()
}

/// `count` people with about `sign_ins_total` successful Box sign-ins between `now - span` and `now`,
/// deterministic for a seed. Mixed in, as real tenants have them: about 10% sign in under an alias
/// (IdP login ≠ Box login, the app user name is the Box login in other letter case), 10% have a
/// differently cased app user name, 5% only ever failed, 5% never tried, and a third of the people
/// have failed attempts, some later than their last success.
pub fn generate_people(
    seed: u64,
    count: usize,
    sign_ins_total: usize,
    span: TimeDelta,
    now: DateTime<Utc>,
) -> Vec<SsoPerson> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5350_4F50_4C45);
    let span_ms = span.num_milliseconds().max(1);
    let at = |rng: &mut ChaCha8Rng| now - TimeDelta::milliseconds(rng.random_range(0..span_ms));
    let per_person = (sign_ins_total as f64 / (count.max(1) as f64 * 0.9)).max(1.0);
    (0..count)
        .map(|i| {
            let box_login = format!("user{i:05}@acme.example");
            let mut p = SsoPerson::new(&box_login);
            let kind: f64 = rng.random();
            if kind < 0.10 {
                p.idp_login = format!("u{i}@acme-corp.okta.example");
                p.app_username = Some(mixed_case(&box_login, &mut rng));
            } else if kind < 0.20 {
                p.app_username = Some(box_login.to_uppercase());
            }
            let role: f64 = rng.random();
            if role >= 0.10 {
                let n = rng.random_range(1..=(2.0 * per_person).round().max(1.0) as usize);
                p.sign_ins = (0..n).map(|_| at(&mut rng)).collect();
            }
            if role < 0.05 || (role >= 0.10 && rng.random_bool(0.33)) {
                p.failed = (0..rng.random_range(1..=3)).map(|_| at(&mut rng)).collect();
            }
            p
        })
        .collect()
}

fn mixed_case(s: &str, rng: &mut ChaCha8Rng) -> String {
    s.chars()
        .map(|c| {
            if rng.random_bool(0.5) {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}
