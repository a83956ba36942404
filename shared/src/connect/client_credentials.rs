//! Connecting through a client-credentials app (a server app authorized in the enterprise's Admin
//! Console) instead of OAuth: one token is minted to prove the credentials, the enterprise and the
//! activity source are checked as for OAuth, then the connection is stored.

use super::*;

impl ConnectService {
    /// Connects with a server app authorized in the Box Admin Console (client-credentials grant),
    /// after proving the credentials by minting one token.
    #[tracing::instrument(skip_all, fields(tenant = %tenant))]
    pub async fn connect_client_credentials(
        &self,
        tenant: &TenantId,
        sub: &str,
        input: ClientCredentialsInput,
    ) -> Result<ConnectionView, ConnectError> {
        let invalid = |field: &'static str, detail: &str| ConnectError::InvalidInput {
            field,
            detail: detail.to_owned(),
        };
        let id = &input.client_id;
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(invalid(
                "client_id",
                "`client_id` must be 1 to 64 letters and digits, as shown in the Box Developer Console",
            ));
        }
        let secret_len = input.client_secret.expose_secret().chars().count();
        if secret_len == 0 || secret_len > 256 {
            return Err(invalid("client_secret", "`client_secret` must be 1 to 256 characters"));
        }
        let enterprise_id = EnterpriseId::parse(&input.enterprise_id).map_err(|_| {
            invalid(
                "enterprise_id",
                "`enterprise_id` must be the Box enterprise id (digits only)",
            )
        })?;
        let app = AppCredentials {
            client_id: input.client_id.clone(),
            client_secret: input.client_secret.clone(),
        };
        let grant = match self.box_api.client_credentials(&app, &enterprise_id).await {
            Ok(grant) => grant,
            Err(e @ BoxError::OAuth { .. }) => {
                tracing::info!(error = %e, reason = "credentials_refused", "client-credentials connect refused");
                return Err(ConnectError::CredentialsRefused(
                    "Box refused these credentials. Check the client id and secret, and that the app is authorized in the Box Admin Console with App + Enterprise Access for this enterprise".into(),
                ));
            }
            Err(e) => return Err(box_unavailable(e)),
        };
        let me = self.box_api.me(&grant.access_token).await.map_err(box_unavailable)?;
        let Some(enterprise) = me.enterprise.clone().filter(|e| e.id == enterprise_id.as_str()) else {
            return Err(ConnectError::CredentialsRefused(
                "the app's token does not belong to this enterprise; check `enterprise_id`".into(),
            ));
        };
        let ids = BoxIds::of(&me, &enterprise).ok_or_else(|| {
            ConnectError::Unexpected(anyhow::anyhow!("Box answered with a user id that is not digits"))
        })?;
        if let Some(existing) = self.other_enterprise(tenant, &ids.enterprise).await? {
            return Err(ConnectError::ConnectedToAnotherEnterprise(format!(
                "this seatsync account is connected to Box enterprise {existing}; disconnect it first (DELETE /connections/box), then connect the new one"
            )));
        }
        let activity_source = self.probe_events(&grant.access_token).await?;
        let tokens = BoxTokenSet {
            kind: TokenKind::ClientCredentials,
            access_token: grant.access_token.clone(),
            access_expires_at: grant.expires_at,
            refresh_token: None,
            obtained_at: Utc::now(),
            client_id: Some(input.client_id.clone()),
            client_secret: Some(input.client_secret.clone()),
            enterprise_id: Some(enterprise_id),
        };
        let record = record_for(
            ConnectMethod::ClientCredentials,
            &me,
            &enterprise,
            ids,
            sub,
            Vec::new(),
            activity_source,
        );
        self.store(tenant, &tokens, &request_token_from(&grant.access_token), &record)
            .await?;
        tracing::info!(method = "client_credentials", "Box connected");
        Ok(ConnectionView::from_record(&record))
    }
}
