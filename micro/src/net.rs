//! Addresses: the two ends of a served connection, and how a listening
//! address is written (Go's `:8080`) and advertised in the registry. Shared
//! by the RPC server, the HTTP broker and the service that registers them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The two ends of a connection, written once as the `Local` and `Remote`
/// metadata values every call on it carries.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) local: String,
    pub(crate) remote: String,
}

/// Go's `:8080` means every interface.
pub(crate) fn normalize_address(address: &str) -> String {
    if address.starts_with(':') {
        format!("0.0.0.0{address}")
    } else {
        address.to_owned()
    }
}

/// The address to register: the advertised one, or the bound one with an
/// unspecified IP replaced by this host's first private IPv4 (loopback when
/// there is none).
pub(crate) fn advertised_address(advertise: Option<&str>, bound: SocketAddr) -> String {
    if let Some(address) = advertise {
        return address.to_owned();
    }
    if !bound.ip().is_unspecified() {
        return bound.to_string();
    }
    let ip = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| ip.is_ipv4() && !ip.is_loopback())
        .max_by_key(|ip| matches!(ip, IpAddr::V4(v4) if v4.is_private()))
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    SocketAddr::new(ip, bound.port()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_addresses_are_normalized() {
        assert_eq!(normalize_address(":8080"), "0.0.0.0:8080");
        assert_eq!(normalize_address("127.0.0.1:1"), "127.0.0.1:1");
    }

    #[test]
    fn advertised_address_prefers_explicit_then_bound() {
        let bound: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(advertised_address(Some("10.0.0.1:1"), bound), "10.0.0.1:1");
        assert_eq!(advertised_address(None, bound), "127.0.0.1:9");
        let any: SocketAddr = "0.0.0.0:9".parse().unwrap();
        assert!(advertised_address(None, any).ends_with(":9"));
    }
}
