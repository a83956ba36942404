//! Where the SSO clients may send requests (reliability item 34, OWASP API7 SSRF). A tenant sets
//! the provider URLs, so without a rule usage-sync would call any host it names from inside AWS:
//! the Lambda Runtime API on `127.0.0.1:9001`, the instance metadata on `169.254.169.254`, a
//! private address. [`OutboundPolicy`] allows https to each provider's own hosts only, on the
//! default port, without user info or IP literals; [`PublicOnly`] also refuses names that resolve
//! to loopback, link-local, private or otherwise non-public addresses (DNS rebinding).
//!
//! The simulators listen on `http://127.0.0.1:<port>`: tests and `seatsync-local` allow that with
//! [`OutboundPolicy::with_loopback_simulators`], a code-level switch no function's `main.rs` sets
//! and no environment variable reaches.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

/// A provider endpoint a tenant may configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The Okta org URL.
    Okta,
    /// Microsoft Entra ID's token endpoint host.
    EntraLogin,
    /// Microsoft Graph.
    EntraGraph,
    /// Google's OAuth token endpoint and the Admin SDK Reports API.
    Google,
}

/// How a host may be named: exactly, or as a subdomain (on a label boundary) of a domain.
#[derive(Debug, Clone, Copy)]
enum Pattern {
    Exact(&'static str),
    SubdomainOf(&'static str),
}

impl Service {
    fn patterns(self) -> &'static [Pattern] {
        match self {
            Service::Okta => &[
                Pattern::SubdomainOf("okta.com"),
                Pattern::SubdomainOf("oktapreview.com"),
                Pattern::SubdomainOf("okta-emea.com"),
            ],
            Service::EntraLogin => &[Pattern::Exact("login.microsoftonline.com")],
            Service::EntraGraph => &[Pattern::Exact("graph.microsoft.com")],
            Service::Google => &[Pattern::SubdomainOf("googleapis.com")],
        }
    }

    /// The allowed hosts, for messages: `*.okta.com, *.oktapreview.com, ...`.
    pub fn allowed_hosts(self) -> String {
        self.patterns()
            .iter()
            .map(|p| match p {
                Pattern::Exact(h) => (*h).to_owned(),
                Pattern::SubdomainOf(d) => format!("*.{d}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn allows_host(self, host: &str) -> bool {
        self.patterns().iter().any(|p| match p {
            Pattern::Exact(h) => host == *h,
            Pattern::SubdomainOf(d) => host
                .strip_suffix(d)
                .and_then(|prefix| prefix.strip_suffix('.'))
                .is_some_and(|sub| !sub.is_empty()),
        })
    }
}

/// Which URLs the SSO clients may call. The default is production's: the providers' https hosts
/// only, and only at public addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboundPolicy {
    loopback_simulators: bool,
}

impl OutboundPolicy {
    /// Production: the providers' own https hosts, public addresses only.
    pub const PROVIDERS_ONLY: OutboundPolicy = OutboundPolicy {
        loopback_simulators: false,
    };

    /// Also allows `http://127.0.0.1:<port>` (or `[::1]`), where the simulators listen, and skips
    /// the public-address check. For tests and `tools/seatsync-local` only: no function sets it.
    pub const fn with_loopback_simulators() -> OutboundPolicy {
        OutboundPolicy {
            loopback_simulators: true,
        }
    }

    pub fn allows_loopback_simulators(&self) -> bool {
        self.loopback_simulators
    }

    /// Whether `url` may be called for `service`; the error says why not and what is allowed,
    /// without echoing the URL (it may carry user info).
    pub fn check(&self, service: Service, url: &Url) -> Result<(), String> {
        if self.loopback_simulators && is_loopback_simulator(url) {
            return Ok(());
        }
        let allowed = format!(
            "it must be an https URL on {} (default port, no user name or password, no IP address)",
            service.allowed_hosts()
        );
        if url.scheme() != "https" {
            return Err(format!("{allowed}; this one is not https"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("{allowed}; this one carries a user name or password"));
        }
        if url.port().is_some() {
            return Err(format!("{allowed}; this one names a port"));
        }
        match url.host() {
            Some(Host::Domain(host)) if is_dns_name(host) && service.allows_host(host) => Ok(()),
            Some(Host::Ipv4(_) | Host::Ipv6(_)) => Err(format!("{allowed}; this one is an IP address")),
            _ => Err(format!("{allowed}; this one names another host")),
        }
    }
}

fn is_loopback_simulator(url: &Url) -> bool {
    let loopback = match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    };
    url.scheme() == "http" && loopback && url.username().is_empty() && url.password().is_none()
}

/// Lower-case letters, digits and inner hyphens in dot-separated labels: no trailing dot, no
/// empty label, nothing a resolver could read as an address.
fn is_dns_name(host: &str) -> bool {
    host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// Whether `ip` is a public unicast address: not loopback, private, link-local, shared (CGNAT),
/// unspecified, broadcast, multicast, documentation, benchmarking or reserved, in v4 or v6 (a
/// v4-mapped or NAT64 v6 address is judged by its v4 part).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return is_public_v4(Ipv4Addr::new(a, b, c, d));
            }
            is_public_v6(v6)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // Unique local fc00::/7, link-local fe80::/10, site-local fec0::/10.
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] & 0xffc0) == 0xfec0
        // Documentation 2001:db8::/32; IPv4-compatible ::/96.
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        || s[..6] == [0, 0, 0, 0, 0, 0])
}

/// A DNS resolver that keeps only public addresses, and fails when none is left: a provider name
/// that resolves to `127.0.0.1` or `169.254.169.254` is never connected to.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = resolved.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err("the provider's host name resolves to no public address".into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use reqwest::dns::Resolve;

    use super::*;

    fn check(policy: OutboundPolicy, service: Service, url: &str) -> Result<(), String> {
        policy.check(service, &Url::parse(url).unwrap())
    }

    #[test]
    fn only_https_on_the_providers_hosts_passes() {
        let p = OutboundPolicy::PROVIDERS_ONLY;
        for ok in [
            "https://acme.okta.com",
            "https://acme.okta.com/",
            "https://ACME.OKTA.COM/path",
            "https://a.b.oktapreview.com",
            "https://acme.okta-emea.com",
        ] {
            assert_eq!(check(p, Service::Okta, ok), Ok(()), "{ok}");
        }
        assert_eq!(
            check(p, Service::EntraLogin, "https://login.microsoftonline.com"),
            Ok(())
        );
        assert_eq!(check(p, Service::EntraGraph, "https://graph.microsoft.com/"), Ok(()));
        assert_eq!(check(p, Service::Google, "https://oauth2.googleapis.com/token"), Ok(()));
        assert_eq!(check(p, Service::Google, "https://admin.googleapis.com"), Ok(()));
        for bad in [
            "http://acme.okta.com",
            "https://okta.com",
            "https://evil-okta.com",
            "https://acmeokta.com",
            "https://acme.okta.com.evil.com",
            "https://acme.okta.com.",
            "https://acme.okta.com:8443",
            "https://u:p@acme.okta.com",
            "https://u@acme.okta.com",
            "https://127.0.0.1",
            "https://2130706433",
            "https://0x7f000001",
            "https://0177.0.0.1",
            "https://127.1",
            "https://[::1]",
            "https://[::ffff:127.0.0.1]",
            "https://169.254.169.254",
            "https://localhost",
            "https://evil.com",
            "ftp://acme.okta.com",
            "https://login.microsoftonline.com",
        ] {
            let err = check(p, Service::Okta, bad).expect_err(bad);
            assert!(err.contains("*.okta.com") && !err.contains("u:p"), "{bad}: {err}");
        }
        assert!(check(p, Service::EntraLogin, "https://login.microsoftonline.com.evil.com").is_err());
        assert!(check(p, Service::EntraGraph, "https://x.graph.microsoft.com").is_err());
        assert!(check(p, Service::Google, "https://googleapis.com").is_err());
    }

    #[test]
    fn loopback_http_passes_only_with_the_simulator_override() {
        let url = "http://127.0.0.1:41234";
        assert!(check(OutboundPolicy::default(), Service::Okta, url).is_err());
        let sims = OutboundPolicy::with_loopback_simulators();
        assert_eq!(check(sims, Service::Okta, url), Ok(()));
        assert_eq!(check(sims, Service::Google, "http://[::1]:8080/token"), Ok(()));
        assert_eq!(check(sims, Service::Okta, "https://acme.okta.com"), Ok(()));
        for bad in [
            "http://10.0.0.1:80",
            "http://169.254.169.254",
            "http://evil.com",
            "http://u:p@127.0.0.1:1",
        ] {
            assert!(check(sims, Service::Okta, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn non_public_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2001:db8::1",
            "ff02::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "52.94.0.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn the_resolver_refuses_a_name_that_resolves_to_loopback() {
        let name = reqwest::dns::Name::from_str("localhost").unwrap();
        let Err(err) = PublicOnly.resolve(name).await else {
            panic!("localhost resolved to a public address")
        };
        assert!(err.to_string().contains("no public address"), "{err}");
    }
}
