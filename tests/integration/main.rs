//! One integration-test binary (one link step on 2 cores); each module tests one feature by name.

mod box_client_errors;
mod box_events_stream;
mod box_oauth;
mod box_user_changes;
mod box_users_paging;
mod connect_client_credentials;
mod connect_edge;
mod connect_fixture;
mod connect_logs;
mod connect_oauth;
mod connect_openapi;
mod connect_status;
mod infra_template;
mod sso_entra;
mod sso_google;
mod sso_okta;
mod storage_dynamodb;
mod storage_secrets;
mod sync_box;
mod sync_service;
mod token_provider;
