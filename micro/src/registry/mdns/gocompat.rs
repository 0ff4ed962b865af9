//! Go Micro's own mDNS names, beside the standard DNS-SD ones.
//!
//! Go Micro v5 does not use DNS-SD service types: it serves each node under
//! `<node-id>.<service>.micro.` (PTR from `<service>.micro.`, SRV, TXT, A),
//! answers queries by unicast to the asking socket, announces new nodes
//! with an unsolicited response, and says goodbye with TTL 0
//! (`util/mdns`, `registry/mdns_registry.go`). `mdns-sd` only speaks
//! `._tcp.local.` names, so this module speaks the `.micro.` ones itself
//! with `simple-dns` on a second socket bound to the mDNS port (the
//! operating system hands multicast packets to both sockets):
//!
//! - a responder answers Go clients' queries for micro's own nodes;
//! - a querier asks for `<service>.micro.` as a Go client does;
//! - announcements and goodbyes of Go nodes are passed on to the registry.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use simple_dns::rdata::{A, PTR, RData, SRV, TXT};
use simple_dns::{CLASS, CharacterString, Name, Packet, PacketFlag, QCLASS, QTYPE, Question, ResourceRecord, TYPE};
use socket2::{Domain, Protocol, Socket, Type};
use tracing::debug;

use super::txt::{self, NodeTxt};
use crate::registry::{Node, Service};

/// The mDNS multicast group.
const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
/// Go Micro's record TTL.
const TTL: u32 = 120;
/// The TTL of records learnt from a query.
pub(crate) const RECORD_TTL: u32 = TTL;
/// How long a query collects answers: Go Micro's mDNS registry timeout.
pub(crate) const QUERY_WAIT: Duration = Duration::from_millis(100);
/// Go Micro's domain.
const DOMAIN: &str = "micro";
/// How often the responder checks whether it should stop.
const POLL: Duration = Duration::from_millis(250);

/// A Go node heard of, or a goodbye for one.
#[derive(Debug)]
pub(crate) struct Heard {
    /// The node as a one-node service.
    pub(crate) service: Service,
    /// The record TTL; zero for a goodbye.
    pub(crate) ttl: u32,
}

/// The `.micro.` responder and querier. Clones share one socket.
#[derive(Clone)]
pub(crate) struct GoCompat {
    shared: Arc<Shared>,
}

struct Shared {
    socket: UdpSocket,
    interfaces: Vec<Ipv4Addr>,
    port: u16,
    /// This process's nodes by instance address (`<id>.<service>.micro`).
    published: Mutex<BTreeMap<String, Published>>,
    stop: AtomicBool,
}

#[derive(Clone, Debug)]
struct Published {
    service: String,
    instance: String,
    host: String,
    ip: Ipv4Addr,
    port: u16,
    txt: Vec<String>,
}

impl GoCompat {
    /// Binds the mDNS port on `interfaces` (IPv4 addresses) and starts
    /// answering; Go nodes heard of are passed to `heard`.
    pub(crate) fn start(
        interfaces: Vec<Ipv4Addr>,
        port: u16,
        heard: impl Fn(Heard) + Send + 'static,
    ) -> io::Result<GoCompat> {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_reuse_address(true)?;
        #[cfg(unix)]
        socket.set_reuse_port(true)?;
        socket.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into())?;
        let mut joined = 0;
        for ip in &interfaces {
            match socket.join_multicast_v4(&GROUP, ip) {
                Ok(()) => joined += 1,
                Err(e) => debug!(interface = %ip, error = %e, "cannot join the mDNS group"),
            }
        }
        if joined == 0 {
            return Err(io::Error::other("cannot join the mDNS group on any interface"));
        }
        socket.set_multicast_loop_v4(true)?;
        socket.set_read_timeout(Some(POLL))?;
        let shared = Arc::new(Shared {
            socket: socket.into(),
            interfaces,
            port,
            published: Mutex::default(),
            stop: AtomicBool::new(false),
        });
        let serving = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("micro-mdns-go".to_owned())
            .spawn(move || serve(&serving, &heard))?;
        Ok(GoCompat { shared })
    }

    /// Answers for the nodes of `service` from now on, and announces them.
    pub(crate) fn publish(&self, service: &Service) -> Result<(), String> {
        let mut records = Vec::new();
        for node in &service.nodes {
            let published = published(service, node)?;
            records.push(published.clone());
            self.shared.lock().insert(published.instance.clone(), published);
        }
        self.shared.announce(&records, TTL);
        Ok(())
    }

    /// Stops answering for the nodes of `service` and says goodbye.
    pub(crate) fn withdraw(&self, service: &Service) {
        let mut gone = Vec::new();
        for node in &service.nodes {
            let instance = instance_address(&node.id, &service.name);
            if let Some(published) = self.shared.lock().remove(&instance) {
                gone.push(published);
            }
        }
        self.shared.announce(&gone, 0);
    }

    /// Asks, as a Go Micro client does, for the nodes of `service`, and
    /// collects the answers for `wait`.
    pub(crate) fn query(&self, service: &str, wait: Duration) -> io::Result<Vec<Service>> {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        socket.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0).into())?;
        socket.set_multicast_loop_v4(true)?;
        let socket: UdpSocket = socket.into();
        let question = service_address(service);
        let mut packet = Packet::new_query(0);
        packet.questions.push(Question::new(
            name(&question)?,
            QTYPE::TYPE(TYPE::PTR),
            QCLASS::CLASS(CLASS::IN),
            false,
        ));
        let bytes = packet.build_bytes_vec().map_err(io::Error::other)?;
        self.shared.multicast(&socket, &bytes);
        let deadline = Instant::now() + wait;
        let mut found: BTreeMap<String, Service> = BTreeMap::new();
        let mut buf = vec![0u8; 9000];
        while let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
            socket.set_read_timeout(Some(left))?;
            let Ok((len, _)) = socket.recv_from(&mut buf) else {
                break;
            };
            let Ok(packet) = Packet::parse(&buf[..len]) else {
                continue;
            };
            for heard in nodes_in(&packet, Some(service)) {
                if heard.ttl > 0 {
                    let id = heard.service.nodes[0].id.clone();
                    found.insert(id, heard.service);
                }
            }
        }
        Ok(found.into_values().collect())
    }
}

impl GoCompat {
    /// Stops answering; the thread ends within a poll interval.
    pub(crate) fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Published>> {
        self.published.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `bytes` to the mDNS group on every interface.
    fn multicast(&self, socket: &UdpSocket, bytes: &[u8]) {
        let group = SocketAddr::from((GROUP, self.port));
        for ip in &self.interfaces {
            let sock = socket2::SockRef::from(socket);
            if let Err(e) = sock
                .set_multicast_if_v4(ip)
                .and_then(|()| socket.send_to(bytes, group).map(drop))
            {
                debug!(interface = %ip, error = %e, "mDNS send failed");
            }
        }
    }

    /// An unsolicited response with the records of `nodes` (a goodbye with TTL 0).
    fn announce(&self, nodes: &[Published], ttl: u32) {
        if nodes.is_empty() {
            return;
        }
        let mut packet = Packet::new_reply(0);
        packet.set_flags(PacketFlag::AUTHORITATIVE_ANSWER);
        for node in nodes {
            if let Err(e) = push_records(&mut packet, node, ttl) {
                debug!(error = %e, "cannot build the announcement");
                return;
            }
        }
        match packet.build_bytes_vec_compressed() {
            Ok(bytes) => self.multicast(&self.socket, &bytes),
            Err(e) => debug!(error = %e, "cannot encode the announcement"),
        }
    }

    /// The answer to a query, as Go Micro's server gives it: the question
    /// echoed and every matching record in the answer section.
    fn answer(&self, query: &Packet<'_>) -> Option<Vec<u8>> {
        let published = self.lock();
        let mut reply = Packet::new_reply(query.id());
        reply.set_flags(PacketFlag::AUTHORITATIVE_ANSWER);
        for question in &query.questions {
            let asked = question.qname.to_string();
            for node in published.values() {
                let matches = asked.eq_ignore_ascii_case(&service_address(&node.service))
                    || asked.eq_ignore_ascii_case(&node.instance)
                    || (asked.eq_ignore_ascii_case(&node.host)
                        && matches!(question.qtype, QTYPE::TYPE(TYPE::A) | QTYPE::ANY));
                if matches && push_records(&mut reply, node, TTL).is_err() {
                    return None;
                }
            }
            reply.questions.push(question.clone());
        }
        if reply.answers.is_empty() {
            return None;
        }
        reply.build_bytes_vec_compressed().ok()
    }
}

/// Answers queries and hears announcements until stopped.
fn serve(shared: &Shared, heard: &dyn Fn(Heard)) {
    let mut buf = vec![0u8; 9000];
    while !shared.stop.load(Ordering::SeqCst) {
        let (len, from) = match shared.socket.recv_from(&mut buf) {
            Ok(received) => received,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
            Err(e) => {
                debug!(error = %e, "mDNS receive failed");
                continue;
            }
        };
        let Ok(packet) = Packet::parse(&buf[..len]) else {
            continue;
        };
        if packet.has_flags(PacketFlag::RESPONSE) {
            for node in nodes_in(&packet, None) {
                heard(node);
            }
        } else if let Some(answer) = shared.answer(&packet) {
            // Go Micro answers by unicast to the asking socket.
            if let Err(e) = shared.socket.send_to(&answer, from) {
                debug!(%from, error = %e, "cannot answer an mDNS query");
            }
        }
    }
}

fn published(service: &Service, node: &Node) -> Result<Published, String> {
    let address: SocketAddr = node
        .address
        .parse()
        .map_err(|_| format!("node {} has address {:?}, not ip:port", node.id, node.address))?;
    let IpAddr::V4(ip) = address.ip() else {
        return Err(format!(
            "node {}: Go Micro's mDNS records carry IPv4 addresses",
            node.id
        ));
    };
    let record = NodeTxt {
        metadata: node.metadata.clone(),
        service: service.name.clone(),
        version: service.version.clone(),
        endpoints: service.endpoints.clone(),
    };
    Ok(Published {
        service: service.name.clone(),
        instance: instance_address(&node.id, &service.name),
        host: format!("{}.{DOMAIN}", super::record::host_label(&node.id)),
        ip,
        port: address.port(),
        txt: txt::encode(&record)?,
    })
}

/// `<service>.micro`
fn service_address(service: &str) -> String {
    format!("{service}.{DOMAIN}")
}

/// `<node-id>.<service>.micro`
fn instance_address(node: &str, service: &str) -> String {
    format!("{node}.{service}.{DOMAIN}")
}

fn name(text: &str) -> io::Result<Name<'_>> {
    Name::new(text).map_err(io::Error::other)
}

/// PTR, SRV, A and TXT of one node, in the answer section.
fn push_records<'a>(packet: &mut Packet<'a>, node: &'a Published, ttl: u32) -> io::Result<()> {
    let service = name_owned(&service_address(&node.service))?;
    let instance = name(&node.instance)?;
    let host = name(&node.host)?;
    let mut txt = TXT::new();
    for chunk in &node.txt {
        txt.add_char_string(CharacterString::new(chunk.as_bytes()).map_err(io::Error::other)?);
    }
    let records = [
        ResourceRecord::new(service, CLASS::IN, ttl, RData::PTR(PTR(instance.clone()))),
        ResourceRecord::new(
            instance.clone(),
            CLASS::IN,
            ttl,
            RData::SRV(SRV {
                priority: 10,
                weight: 1,
                port: node.port,
                target: host.clone(),
            }),
        ),
        ResourceRecord::new(host, CLASS::IN, ttl, RData::A(A::from(node.ip))),
        ResourceRecord::new(instance, CLASS::IN, ttl, RData::TXT(txt)),
    ];
    packet.answers.extend(records);
    Ok(())
}

fn name_owned(text: &str) -> io::Result<Name<'static>> {
    Name::new(text).map(Name::into_owned).map_err(io::Error::other)
}

/// The Go Micro nodes described by the records of a packet: SRV records
/// under `.micro.` with their TXT and the A record of their target. When
/// `service` is given, only its nodes.
fn nodes_in(packet: &Packet<'_>, service: Option<&str>) -> Vec<Heard> {
    let records = packet.answers.iter().chain(&packet.additional_records);
    // (owner as written, target, port, ttl); names are compared without case.
    let mut srv: Vec<(String, String, u16, u32)> = Vec::new();
    let mut txts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut hosts: BTreeMap<String, Ipv4Addr> = BTreeMap::new();
    for record in records {
        let written = record.name.to_string();
        let owner = written.to_ascii_lowercase();
        match &record.rdata {
            RData::SRV(s) => srv.push((written, s.target.to_string().to_ascii_lowercase(), s.port, record.ttl)),
            RData::TXT(t) => {
                let strings = t
                    .iter_raw()
                    .map(|(k, v)| match v {
                        Some(v) => format!("{}={}", String::from_utf8_lossy(k), String::from_utf8_lossy(v)),
                        None => String::from_utf8_lossy(k).into_owned(),
                    })
                    .collect();
                txts.insert(owner, strings);
            }
            RData::A(a) => {
                hosts.insert(owner, Ipv4Addr::from(a.address));
            }
            _ => {}
        }
    }
    let suffix = format!(".{DOMAIN}");
    srv.into_iter()
        .filter(|(owner, ..)| {
            let owner = owner.to_ascii_lowercase();
            owner.ends_with(&suffix) && !owner.contains("._services.")
        })
        .filter_map(|(owner, target, port, ttl)| {
            let record = txt::decode(txts.get(&owner.to_ascii_lowercase())?.iter().map(String::as_str)).ok()?;
            if service.is_some_and(|s| !s.eq_ignore_ascii_case(&record.service)) {
                return None;
            }
            let suffix = format!(".{}", service_address(&record.service));
            let id = owner.get(..owner.len().checked_sub(suffix.len())?)?;
            if !owner[id.len()..].eq_ignore_ascii_case(&suffix) {
                return None;
            }
            let id = id.to_owned();
            let ip = hosts.get(&target).copied().unwrap_or(Ipv4Addr::UNSPECIFIED);
            Some(Heard {
                ttl,
                service: Service {
                    name: record.service,
                    version: record.version,
                    metadata: BTreeMap::new(),
                    endpoints: record.endpoints,
                    nodes: vec![Node {
                        id,
                        address: SocketAddr::from((ip, port)).to_string(),
                        metadata: record.metadata,
                    }],
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Service, Published) {
        let service = Service {
            name: "greeter".into(),
            version: "latest".into(),
            nodes: vec![Node {
                id: "greeter-1".into(),
                address: "127.0.0.1:9090".into(),
                metadata: [("protocol".to_owned(), "mucp".to_owned())].into(),
            }],
            ..Service::default()
        };
        let published = published(&service, &service.nodes[0]).unwrap();
        (service, published)
    }

    #[test]
    fn records_read_back_as_go_micro_reads_them() {
        let (service, node) = sample();
        let mut packet = Packet::new_reply(0);
        push_records(&mut packet, &node, TTL).unwrap();
        let bytes = packet.build_bytes_vec_compressed().unwrap();
        let parsed = Packet::parse(&bytes).unwrap();
        let nodes = nodes_in(&parsed, Some("greeter"));
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].ttl, TTL);
        assert_eq!(nodes[0].service.nodes, service.nodes);
        assert!(nodes_in(&parsed, Some("other")).is_empty());
    }

    #[test]
    fn go_style_queries_get_the_question_echoed_and_all_records() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let shared = Shared {
            socket,
            interfaces: Vec::new(),
            port: 5353,
            published: Mutex::default(),
            stop: AtomicBool::new(false),
        };
        let (_, node) = sample();
        shared.lock().insert(node.instance.clone(), node);
        // What Go's miekg/dns packs for `m.SetQuestion("greeter.micro.", dns.TypePTR)`.
        let query: &[u8] = b"\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07greeter\x05micro\x00\x00\x0c\x00\x01";
        let answer = shared.answer(&Packet::parse(query).unwrap()).unwrap();
        let reply = Packet::parse(&answer).unwrap();
        assert!(reply.has_flags(PacketFlag::RESPONSE));
        assert_eq!(reply.questions[0].qname.to_string(), "greeter.micro");
        let types: Vec<_> = reply.answers.iter().map(|r| std::mem::discriminant(&r.rdata)).collect();
        assert_eq!(types.len(), 4, "PTR, SRV, A and TXT");
        let unknown: &[u8] = b"\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05other\x05micro\x00\x00\x0c\x00\x01";
        assert!(shared.answer(&Packet::parse(unknown).unwrap()).is_none());
    }
}
