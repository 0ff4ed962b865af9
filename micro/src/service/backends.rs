//! The registry and broker a service's flags choose (`--registry`,
//! `--broker`), and the defaults when they choose none: mDNS and Go Micro's
//! HTTP broker.

use std::sync::Arc;

use super::{Flags, ServiceError};
use crate::broker::{Broker, HttpBroker, HttpBrokerOptions, MemoryBroker};
use crate::registry::{MdnsOptions, MdnsRegistry, MemoryRegistry, Registry};

pub(super) fn check_choice(flag: &str, value: Option<&str>, allowed: &[&str]) -> Result<(), ServiceError> {
    match value {
        Some(v) if !allowed.contains(&v) => Err(ServiceError::Flags(format!(
            "--{flag} {v:?} is not available: micro provides {}",
            allowed.join(", ")
        ))),
        _ => Ok(()),
    }
}

/// The registry a `--registry` flag names, if any.
pub(super) fn registry_from_flag(flags: &Flags) -> Result<Option<Arc<dyn Registry>>, String> {
    match flags.registry.as_deref() {
        None | Some("") => Ok(None),
        Some("mdns") => Ok(Some(default_registry(flags))),
        Some("memory") => Ok(Some(Arc::new(MemoryRegistry::new()))),
        Some(other) => Err(format!(
            "--registry {other:?} is not available: micro provides mdns and memory"
        )),
    }
}

/// The brokers `--broker` can name.
pub(super) enum BrokerChoice {
    Http,
    Memory,
    #[cfg(feature = "nats")]
    Nats,
}

pub(super) fn broker_choice(flags: &Flags) -> Result<Option<BrokerChoice>, String> {
    match flags.broker.as_deref() {
        None | Some("") => Ok(None),
        Some("http") => Ok(Some(BrokerChoice::Http)),
        Some("memory") => Ok(Some(BrokerChoice::Memory)),
        #[cfg(feature = "nats")]
        Some("nats") => Ok(Some(BrokerChoice::Nats)),
        #[cfg(not(feature = "nats"))]
        Some("nats") => Err("--broker nats needs micro built with the `nats` feature".to_owned()),
        Some(other) => Err(format!(
            "--broker {other:?} is not available: micro provides http, memory and nats"
        )),
    }
}

/// The broker a `--broker` flag names, if any.
pub(super) fn broker_from_flag(flags: &Flags, registry: &Arc<dyn Registry>) -> Result<Option<Arc<dyn Broker>>, String> {
    let broker = broker_choice(flags)?.map(|choice| -> Arc<dyn Broker> {
        match choice {
            BrokerChoice::Http => default_broker(flags, registry),
            BrokerChoice::Memory => Arc::new(MemoryBroker::shared()),
            #[cfg(feature = "nats")]
            BrokerChoice::Nats => Arc::new(crate::broker::NatsBroker::new(
                flags.broker_address.as_deref().unwrap_or_default(),
            )),
        }
    });
    Ok(broker)
}

/// The HTTP broker on `registry`, listening where `--broker_address` says.
pub(super) fn default_broker(flags: &Flags, registry: &Arc<dyn Registry>) -> Arc<dyn Broker> {
    let mut options = HttpBrokerOptions::default();
    if let Some(address) = flags.broker_address.as_deref().filter(|a| !a.is_empty()) {
        options = options.address(address);
    }
    Arc::new(HttpBroker::with_options(Arc::clone(registry), options))
}

/// mDNS, on the interfaces `--mdns_interfaces` names.
pub(super) fn default_registry(flags: &Flags) -> Arc<dyn Registry> {
    let mut options = MdnsOptions::default().go_compat(flags.mdns_go_compat.unwrap_or(false));
    if let Some(interfaces) = &flags.mdns_interfaces {
        options = options.interfaces_flag(interfaces);
    }
    Arc::new(MdnsRegistry::with_options(options))
}
