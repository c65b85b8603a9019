//! The Ingress listener flags of `flotilla up` and `flotilla node`.

use std::net::SocketAddr;

use clap::Args;

/// `ADDR:PORT`, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Listen {
    Off,
    On(SocketAddr),
}

fn parse_listen(s: &str) -> Result<Listen, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(Listen::Off);
    }
    s.parse().map(Listen::On).map_err(|_| format!("{s:?} is neither ADDR:PORT (e.g. 127.0.0.1:8080) nor off"))
}

#[derive(Args, Debug, Clone)]
pub(crate) struct IngressFlags {
    /// Where the built-in Ingress controller (IngressClass flotilla) listens for HTTP;
    /// `off` serves no Ingress at all (neither HTTP nor HTTPS)
    #[arg(long, value_name = "ADDR:PORT|off", default_value = "127.0.0.1:8080", value_parser = parse_listen)]
    pub ingress_listen: Listen,
    /// Where the built-in Ingress controller listens for HTTPS (certificates from the
    /// Ingresses' tls Secrets, picked by SNI); `off` for HTTP only
    #[arg(long, value_name = "ADDR:PORT|off", default_value = "127.0.0.1:8443", value_parser = parse_listen)]
    pub ingress_tls_listen: Listen,
}

impl IngressFlags {
    /// What a node given these flags listens on.
    pub(crate) fn listen(&self) -> Option<flotilla_node::IngressListen> {
        let Listen::On(http) = self.ingress_listen else { return None };
        let https = match self.ingress_tls_listen {
            Listen::On(a) => Some(a),
            Listen::Off => None,
        };
        Some(flotilla_node::IngressListen { http, https })
    }
}

/// Prints where `node`'s Ingress controller listens, if it runs one.
pub(crate) fn print_listening(node: &flotilla_node::NodeHandle) {
    if let Some(http) = node.ingress_addr {
        match node.ingress_tls_addr {
            Some(https) => println!("flotilla ingress listening: http://{http} https://{https}"),
            None => println!("flotilla ingress listening: http://{http}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_disables_both_listeners_tls_off_keeps_http() {
        let flags = |http: &str, https: &str| IngressFlags { ingress_listen: parse_listen(http).expect("http"), ingress_tls_listen: parse_listen(https).expect("https") };
        assert_eq!(flags("off", "127.0.0.1:8443").listen(), None);
        let http_only = flags("0.0.0.0:80", "off").listen().expect("on");
        assert_eq!((http_only.http, http_only.https), ("0.0.0.0:80".parse().expect("addr"), None));
        assert!(parse_listen("8080").unwrap_err().contains("neither ADDR:PORT"));
    }
}
