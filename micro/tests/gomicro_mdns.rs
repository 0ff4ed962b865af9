//! mDNS interop with Go Micro v5 under its own `.micro.` names, with the
//! compatibility mode on. A Go Micro client and server are played byte for
//! byte as `util/mdns` (miekg/dns) behaves: the client sends a PTR query for
//! `<service>.micro.` from an ephemeral port and reads unicast answers; the
//! server answers such queries, announces itself, and says goodbye with TTL
//! 0. Runs inside `netns-run`.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use micro::registry::{
    Action, MdnsOptions, MdnsRegistry, Node, RegisterOptions, Registry, Service, WatchOptions, Watcher,
};
use simple_dns::rdata::{A, PTR, RData, SRV, TXT};
use simple_dns::{CLASS, CharacterString, Name, Packet, PacketFlag, ResourceRecord};
use socket2::{Domain, Protocol, Socket, Type};

const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

fn compat_registry() -> MdnsRegistry {
    MdnsRegistry::with_options(MdnsOptions::default().go_compat(true))
}

/// Go Micro's TXT strings for a node: the JSON, zlib, hex, 255-char chunks.
fn go_txt(service: &str, version: &str, metadata: &str) -> Vec<String> {
    let json = format!(r#"{{"Metadata":{metadata},"Service":"{service}","Version":"{version}","Endpoints":null}}"#);
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zlib.write_all(json.as_bytes()).unwrap();
    let hex = hex::encode(zlib.finish().unwrap());
    hex.as_bytes()
        .chunks(255)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect()
}

/// The records Go Micro's `util/mdns` zone serves for a node, in the answer
/// section of `packet`: PTR, SRV (priority 10, weight 1, the host name as
/// target), A, TXT.
fn go_records<'a>(packet: &mut Packet<'a>, service: &'a str, instance: &'a str, txt: &'a [String], ttl: u32) {
    let mut record = TXT::new();
    for chunk in txt {
        record.add_char_string(CharacterString::new(chunk.as_bytes()).unwrap());
    }
    let host = Name::new("go-host.micro-test").unwrap();
    packet.answers.extend([
        ResourceRecord::new(
            Name::new(service).unwrap(),
            CLASS::IN,
            ttl,
            RData::PTR(PTR(Name::new(instance).unwrap())),
        ),
        ResourceRecord::new(
            Name::new(instance).unwrap(),
            CLASS::IN,
            ttl,
            RData::SRV(SRV {
                priority: 10,
                weight: 1,
                port: 9091,
                target: host.clone(),
            }),
        ),
        ResourceRecord::new(host, CLASS::IN, ttl, RData::A(A::from(Ipv4Addr::LOCALHOST))),
        ResourceRecord::new(Name::new(instance).unwrap(), CLASS::IN, ttl, RData::TXT(record)),
    ]);
}

/// A socket on the mDNS port in the group, as Go Micro's server listens.
fn go_server_socket() -> UdpSocket {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    socket.set_reuse_address(true).unwrap();
    socket.set_reuse_port(true).unwrap();
    socket
        .bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5353).into())
        .unwrap();
    socket.join_multicast_v4(&GROUP, &Ipv4Addr::LOCALHOST).unwrap();
    socket.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    socket.set_multicast_loop_v4(true).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    socket.into()
}

async fn next_event(watcher: &mut Watcher, name: &str, action: Action) -> micro::registry::WatchEvent {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = tokio::time::timeout(left, watcher.next())
            .await
            .unwrap_or_else(|_| panic!("no {action:?} for {name}"))
            .unwrap()
            .unwrap();
        if event.service.name == name && event.action == action {
            return event;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_micro_client_finds_micro_nodes_under_micro_names() {
    let registry = compat_registry();
    let name = unique("gofinds");
    let service = Service {
        name: name.clone(),
        version: "1.2.0".into(),
        nodes: vec![Node {
            id: format!("{name}-node"),
            address: "127.0.0.1:7001".into(),
            metadata: BTreeMap::from([("protocol".to_owned(), "mucp".to_owned())]),
        }],
        ..Service::default()
    };
    registry.register(&service, RegisterOptions::default()).await.unwrap();

    // Go's client: a query from an ephemeral port to the group.
    let client = UdpSocket::bind("0.0.0.0:0").unwrap();
    socket2::SockRef::from(&client)
        .set_multicast_if_v4(&Ipv4Addr::LOCALHOST)
        .unwrap();
    client.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let question = format!("{name}.micro.");
    let mut query = Packet::new_query(0);
    query.questions.push(simple_dns::Question::new(
        Name::new(&question).unwrap(),
        simple_dns::QTYPE::TYPE(simple_dns::TYPE::PTR),
        simple_dns::QCLASS::CLASS(CLASS::IN),
        false,
    ));
    client
        .send_to(&query.build_bytes_vec().unwrap(), (GROUP, 5353))
        .unwrap();
    let mut buf = [0u8; 9000];
    let (len, _) = client
        .recv_from(&mut buf)
        .expect("a unicast answer to the asking socket");
    let answer = Packet::parse(&buf[..len]).unwrap();
    assert!(answer.has_flags(PacketFlag::RESPONSE));
    // Go's client drops answers whose question is not its own.
    assert_eq!(answer.questions[0].qname.to_string(), format!("{name}.micro"));
    let instance = format!("{name}-node.{name}.micro");
    let mut ptr = None;
    let mut srv = None;
    let mut txt = Vec::new();
    let mut a = None;
    for record in &answer.answers {
        match &record.rdata {
            RData::PTR(p) => ptr = Some(p.0.to_string()),
            RData::SRV(s) => srv = Some((record.name.to_string(), s.port, s.target.to_string())),
            RData::TXT(t) => {
                txt = t
                    .iter_raw()
                    .map(|(k, _)| String::from_utf8(k.to_vec()).unwrap())
                    .collect()
            }
            RData::A(rec) => a = Some((record.name.to_string(), Ipv4Addr::from(rec.address))),
            _ => {}
        }
        assert_eq!(record.ttl, 120);
    }
    assert_eq!(ptr.as_deref(), Some(instance.as_str()));
    let (owner, port, target) = srv.expect("SRV");
    assert_eq!((owner.as_str(), port), (instance.as_str(), 7001));
    assert_eq!(
        a,
        Some((target, Ipv4Addr::LOCALHOST)),
        "the A record names the SRV target"
    );
    // Go's registry decodes the TXT strings joined in order.
    let compressed = hex::decode(txt.concat()).unwrap();
    let mut json = String::new();
    std::io::Read::read_to_string(&mut flate2::read::ZlibDecoder::new(compressed.as_slice()), &mut json).unwrap();
    let decoded: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(decoded["Service"], name.as_str());
    assert_eq!(decoded["Version"], "1.2.0");
    assert_eq!(decoded["Metadata"]["protocol"], "mucp");
    registry.deregister(&service).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn micro_finds_go_micro_nodes_and_hears_their_announcements() {
    let name = unique("gonode");
    let txt = go_txt(&name, "latest", r#"{"protocol":"mucp","server":"mucp"}"#);
    let service_name = format!("{name}.micro");
    let instance = format!("{name}-abc.{name}.micro");

    // Go's server: answers PTR queries for <service>.micro. by unicast.
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let (stop, txt, service_name, instance) =
            (Arc::clone(&stop), txt.clone(), service_name.clone(), instance.clone());
        // Bound and joined before the lookup starts, so the query cannot
        // come before the server listens.
        let socket = go_server_socket();
        std::thread::spawn(move || {
            let mut buf = [0u8; 9000];
            while !stop.load(Ordering::SeqCst) {
                let Ok((len, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(query) = Packet::parse(&buf[..len]) else {
                    continue;
                };
                if query.has_flags(PacketFlag::RESPONSE) || query.questions.is_empty() {
                    continue;
                }
                if !query.questions[0].qname.to_string().eq_ignore_ascii_case(&service_name) {
                    continue;
                }
                let mut reply = Packet::new_reply(0);
                reply.set_flags(PacketFlag::AUTHORITATIVE_ANSWER);
                reply.questions.push(query.questions[0].clone());
                go_records(&mut reply, &service_name, &instance, &txt, 120);
                socket.send_to(&reply.build_bytes_vec().unwrap(), from).unwrap();
            }
        })
    };

    let registry = compat_registry();
    let found = registry.get_service(&name).await.expect("the Go node");
    let node = &found[0].nodes[0];
    assert_eq!(node.id, format!("{name}-abc"));
    assert_eq!(node.address, "127.0.0.1:9091");
    assert_eq!(node.metadata["protocol"], "mucp");
    stop.store(true, Ordering::SeqCst);
    server.join().unwrap();

    // A Go node that starts later announces itself; its goodbye removes it.
    let later = unique("golater");
    let later_service = format!("{later}.micro");
    let later_instance = format!("{later}-1.{later}.micro");
    let later_txt = go_txt(&later, "latest", "null");
    let mut watcher = registry.watch(WatchOptions::service(later.clone())).await.unwrap();
    let socket = go_server_socket();
    for ttl in [120, 0] {
        let mut announcement = Packet::new_reply(0);
        announcement.set_flags(PacketFlag::AUTHORITATIVE_ANSWER);
        go_records(&mut announcement, &later_service, &later_instance, &later_txt, ttl);
        socket
            .send_to(&announcement.build_bytes_vec().unwrap(), (GROUP, 5353))
            .unwrap();
        let action = if ttl > 0 { Action::Create } else { Action::Delete };
        let event = next_event(&mut watcher, &later, action).await;
        assert_eq!(event.service.nodes[0].id, format!("{later}-1"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_compat_registries_find_each_other_through_both_namings() {
    let publisher = compat_registry();
    let browser = compat_registry();
    let name = unique("both");
    let service = Service {
        name: name.clone(),
        version: "latest".into(),
        nodes: vec![Node {
            id: format!("{name}-1"),
            address: "127.0.0.1:7100".into(),
            metadata: BTreeMap::new(),
        }],
        ..Service::default()
    };
    publisher.register(&service, RegisterOptions::default()).await.unwrap();
    let started = Instant::now();
    loop {
        if let Ok(found) = browser.get_service(&name).await {
            assert_eq!(
                found.iter().map(|s| s.nodes.len()).sum::<usize>(),
                1,
                "seen once, not once per naming"
            );
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    publisher.deregister(&service).await.unwrap();
}
