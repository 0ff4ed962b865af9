//! A node as a DNS-SD instance and back: its instance name is the node
//! id, its host label a DNS-safe form of it, its SRV and A records its
//! address, and its TXT record Go Micro's encoding of the node (`txt.rs`).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use mdns_sd::{ResolvedService, ServiceInfo, TxtProperty};
use tracing::debug;

use super::SERVICE_TYPE;
use super::txt::{self, NodeTxt};
use crate::registry::{Node, RegistryError, Service};

/// A resolved instance as a one-node Go Micro service, if it is one.
pub(super) fn decode_instance(resolved: &ResolvedService) -> Option<Service> {
    let properties = resolved.get_properties();
    if properties.iter().any(|p| p.val().is_some()) {
        debug!(
            instance = resolved.get_fullname(),
            "TXT record is not Go Micro's encoding; ignored"
        );
        return None;
    }
    let record = match txt::decode(properties.iter().map(TxtProperty::key)) {
        Ok(record) => record,
        Err(e) => {
            debug!(instance = resolved.get_fullname(), error = %e, "TXT record ignored");
            return None;
        }
    };
    let addresses = resolved.get_addresses();
    let ip = addresses
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addresses.iter().next())
        .map(mdns_sd::ScopedIp::to_ip_addr)?;
    let NodeTxt {
        metadata,
        service,
        version,
        endpoints,
    } = record;
    Some(Service {
        name: service,
        version,
        metadata: BTreeMap::new(),
        endpoints,
        nodes: vec![Node {
            id: instance_name(resolved.get_fullname()),
            address: SocketAddr::new(ip, resolved.get_port()).to_string(),
            metadata,
        }],
    })
}

/// The node id: the instance label of a full name, unescaped.
pub(super) fn instance_name(fullname: &str) -> String {
    let escaped = fullname.strip_suffix(SERVICE_TYPE).unwrap_or(fullname);
    let escaped = escaped.strip_suffix('.').unwrap_or(escaped);
    let mut name = String::with_capacity(escaped.len());
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => name.extend(chars.next()),
            other => name.push(other),
        }
    }
    name
}

/// A DNS host label for a node id.
pub(super) fn host_label(node_id: &str) -> String {
    let label: String = node_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' })
        .take(63)
        .collect();
    if label.is_empty() {
        "micro-node".to_owned()
    } else {
        label
    }
}

/// The DNS-SD instance of one node.
pub(super) fn instance_info(service: &Service, node: &Node) -> Result<ServiceInfo, RegistryError> {
    let address: SocketAddr = node.address.parse().map_err(|_| {
        RegistryError::Malformed(format!(
            "node {} has address {:?}; mDNS needs an ip:port address (set one with --server_advertise)",
            node.id, node.address
        ))
    })?;
    let record = NodeTxt {
        metadata: node.metadata.clone(),
        service: service.name.clone(),
        version: service.version.clone(),
        endpoints: service.endpoints.clone(),
    };
    let strings = txt::encode(&record).map_err(RegistryError::Malformed)?;
    let properties: Vec<TxtProperty> = strings.iter().map(|s| TxtProperty::from(s.as_str())).collect();
    let host = format!("{}.local.", host_label(&node.id));
    let mut info = ServiceInfo::new(SERVICE_TYPE, &node.id, &host, address.ip(), address.port(), properties)
        .map_err(|e| RegistryError::Malformed(format!("node {}: {e}", node.id)))?;
    // Node ids are unique (a UUID by default): skip the probing delay.
    info.set_requires_probe(false);
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names_round_trip_escaped_dots() {
        assert_eq!(instance_name("helloworld-1._micro._tcp.local."), "helloworld-1");
        assert_eq!(instance_name("go\\.micro\\.srv-1._micro._tcp.local."), "go.micro.srv-1");
    }

    #[test]
    fn host_labels_are_dns_safe() {
        assert_eq!(host_label("go.micro.srv_x-1"), "go-micro-srv-x-1");
        assert_eq!(host_label(&"a".repeat(100)).len(), 63);
        assert_eq!(host_label(""), "micro-node");
    }
}
