//! A tenant's settings: what Box cannot tell seatsync (seats purchased, their price), how strict
//! to be (inactivity threshold, daily cap on changes, protected logins) and where activity comes
//! from when Box's event stream is closed (the SSO provider; its credentials live in Secrets
//! Manager, never here). Absent settings read as the defaults.

use serde::{Deserialize, Serialize};

use crate::ids::TenantId;
use crate::license::ActivitySignal;
use crate::storage::schema::{SK_SETTINGS, tenant_pk};
use crate::storage::{StoreError, Table};

/// Which identity provider supplies sign-ins when Box's event stream answers 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SsoProviderKind {
    Okta,
    Entra,
    Google,
}

/// The default inactivity threshold in days (ServiceNow's default for direct integrations).
pub const DEFAULT_INACTIVITY_DAYS: u16 = 60;
/// The default cap on user changes per tenant per day.
pub const DEFAULT_DAILY_ACTION_CAP: u32 = 100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TenantSettings {
    /// Seats bought from Box; `None` until the tenant says ("unknown" in reports).
    pub seats_purchased: Option<u32>,
    /// Price of one seat per year, in minor units of `currency` (cents for USD).
    pub price_per_seat_year_minor: Option<u64>,
    /// ISO 4217 code, e.g. `USD`.
    pub currency: Option<String>,
    /// A user is inactive after this many days without activity.
    pub inactivity_threshold_days: u16,
    /// Changes (deactivate, reactivate, delete) allowed per UTC day.
    pub daily_action_cap: u32,
    /// Logins seatsync never changes (lower-case).
    pub protected_logins: Vec<String>,
    /// Where activity comes from when Box's event stream is closed.
    pub sso_provider: Option<SsoProviderKind>,
    /// Whether the connection asks for `root_readwrite` so content can be transferred.
    pub content_transfer: bool,
    /// Which activity the inactivity threshold counts: any (default), logins only, or content
    /// only. The safety rails judge by the strongest signal whatever this says.
    pub activity_signal: ActivitySignal,
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            seats_purchased: None,
            price_per_seat_year_minor: None,
            currency: None,
            inactivity_threshold_days: DEFAULT_INACTIVITY_DAYS,
            daily_action_cap: DEFAULT_DAILY_ACTION_CAP,
            protected_logins: Vec::new(),
            sso_provider: None,
            content_transfer: false,
            activity_signal: ActivitySignal::Any,
        }
    }
}

/// Reads and writes settings items.
#[derive(Debug, Clone)]
pub struct SettingsStore {
    table: Table,
}

impl SettingsStore {
    pub fn new(table: Table) -> Self {
        Self { table }
    }

    /// The tenant's settings, or the defaults when none were saved.
    pub async fn get(&self, tenant: &TenantId) -> Result<TenantSettings, StoreError> {
        Ok(self
            .table
            .get(&tenant_pk(tenant), SK_SETTINGS)
            .await?
            .unwrap_or_default())
    }

    pub async fn put(&self, tenant: &TenantId, settings: &TenantSettings) -> Result<(), StoreError> {
        self.table.put(&tenant_pk(tenant), SK_SETTINGS, settings).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_take_defaults() {
        let s: TenantSettings = serde_json::from_str(r#"{"seats_purchased": 120}"#).unwrap();
        assert_eq!(s.seats_purchased, Some(120));
        assert_eq!(s.inactivity_threshold_days, DEFAULT_INACTIVITY_DAYS);
        assert_eq!(s.daily_action_cap, DEFAULT_DAILY_ACTION_CAP);
    }
}
