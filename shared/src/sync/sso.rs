//! The sync's view of an SSO provider: [`crate::sso::ActivityProvider`] answers per person, this
//! adapter labels each date with its origin and says how far back the provider's logs reach.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::engine::{SsoSignIns, SsoSource};
use crate::license::ActivityOrigin;
use crate::sso::{ActivityProvider, Signal};

pub struct ProviderSource(pub Box<dyn ActivityProvider>);

fn origin(source: &str, signal: Signal) -> ActivityOrigin {
    match (source, signal) {
        ("entra", Signal::TenantWideSignIn) => ActivityOrigin::EntraTenantWide,
        ("entra", _) => ActivityOrigin::Entra,
        ("google", _) => ActivityOrigin::Google,
        _ => ActivityOrigin::Okta,
    }
}

#[async_trait]
impl SsoSource for ProviderSource {
    async fn sign_ins(&self, since: DateTime<Utc>, until: DateTime<Utc>) -> Result<SsoSignIns, String> {
        let source = self.0.source();
        let coverage_since = self.0.coverage_starts_at(since, Utc::now());
        let by_login = self
            .0
            .last_sign_ins(since, until)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(login, s)| (login, (s.at, origin(source, s.signal))))
            .collect();
        Ok(SsoSignIns {
            by_login,
            provider: source.to_owned(),
            coverage_since,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weaker_entra_signal_keeps_its_label() {
        assert_eq!(
            origin("entra", Signal::TenantWideSignIn),
            ActivityOrigin::EntraTenantWide
        );
        assert_eq!(origin("entra", Signal::AppSignIn), ActivityOrigin::Entra);
        assert_eq!(origin("okta", Signal::AppSignIn), ActivityOrigin::Okta);
        assert_eq!(origin("google", Signal::AppSignIn), ActivityOrigin::Google);
    }
}
