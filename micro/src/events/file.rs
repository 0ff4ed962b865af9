//! The file stream: the memory stream's delivery, with every event and
//! every named group's position kept in one file (redb), so that a service
//! restarted, or killed, loses no published event and redelivers what its
//! groups had not acked. The default events backend: no server to run.
//!
//! A publish returns once its event is on disk (an fsync per publish). Acks
//! are written without waiting for the disk: after a crash, events acked
//! just before it may be delivered again (at least once, never lost). All
//! events are also held in memory while the stream is open.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tracing::warn;

use super::memory::{Durable, Position};
use super::{ConsumeOptions, Consumer, Event, EventsError, MemoryStream, PublishOptions, Stream};
use crate::BoxFuture;

/// Events by topic and sequence: Go Micro's event JSON.
const EVENTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("events");
/// Each named group's next index on each topic: everything before it is acked.
const NEXT: TableDefinition<(&str, &str), u64> = TableDefinition::new("group_next");
/// Indices past a group's next one that it acked.
const ACKED: TableDefinition<(&str, &str, u64), ()> = TableDefinition::new("group_acked");

/// A stream kept in a file. Cheap to clone; clones share it.
#[derive(Clone, Debug)]
pub struct FileStream {
    stream: MemoryStream,
}

impl FileStream {
    /// Opens (or creates) the stream kept in the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, EventsError> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(failed)?;
        }
        let db = Database::create(path).map_err(failed)?;
        let events = load(&db)?;
        let file = Arc::new(File {
            db,
            positions: Mutex::default(),
        });
        Ok(FileStream {
            stream: MemoryStream::durable(file, events),
        })
    }
}

fn failed(error: impl std::fmt::Display) -> EventsError {
    EventsError::Backend {
        backend: "file",
        message: error.to_string(),
    }
}

/// Every event in the file, by topic then sequence.
fn load(db: &Database) -> Result<Vec<Event>, EventsError> {
    let tx = db.begin_write().map_err(failed)?;
    // Creates the tables of a new file.
    tx.open_table(EVENTS).map_err(failed)?;
    tx.open_table(NEXT).map_err(failed)?;
    tx.open_table(ACKED).map_err(failed)?;
    tx.commit().map_err(failed)?;
    let tx = db.begin_read().map_err(failed)?;
    let table = tx.open_table(EVENTS).map_err(failed)?;
    let mut events = Vec::new();
    for row in table.iter().map_err(failed)? {
        let (key, json) = row.map_err(failed)?;
        let (_, sequence) = key.value();
        let mut event = Event::from_json(json.value())?;
        event.sequence = Some(sequence);
        events.push(event);
    }
    Ok(events)
}

/// Each group's position, by topic and group.
type Positions = HashMap<(String, String), Position>;

/// The file, and each group's position as last written.
struct File {
    db: Database,
    positions: Mutex<Positions>,
}

impl File {
    fn positions(&self) -> MutexGuard<'_, Positions> {
        self.positions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write(
        &self,
        durability: Durability,
        write: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), EventsError> {
        let mut tx = self.db.begin_write().map_err(failed)?;
        tx.set_durability(durability).map_err(failed)?;
        write(&tx).map_err(failed)?;
        tx.commit().map_err(failed)
    }

    fn read_position(&self, topic: &str, group: &str) -> Result<Option<Position>, EventsError> {
        let tx = self.db.begin_read().map_err(failed)?;
        let next = tx.open_table(NEXT).map_err(failed)?;
        let Some(index) = next.get((topic, group)).map_err(failed)? else {
            return Ok(None);
        };
        let acked_table = tx.open_table(ACKED).map_err(failed)?;
        let mut acked = BTreeSet::new();
        for row in acked_table
            .range((topic, group, 0)..=(topic, group, u64::MAX))
            .map_err(failed)?
        {
            let (key, _) = row.map_err(failed)?;
            acked.insert(key.value().2 as usize);
        }
        Ok(Some((index.value() as usize, acked)))
    }
}

impl Durable for File {
    fn append(&self, event: &Event) -> Result<(), EventsError> {
        let json = event.to_json()?;
        let sequence = event.sequence.unwrap_or_default();
        self.write(Durability::Immediate, |tx| {
            tx.open_table(EVENTS)?
                .insert((event.topic.as_str(), sequence), json.as_slice())?;
            Ok(())
        })
    }

    fn position(&self, topic: &str, group: &str) -> Option<Position> {
        match self.read_position(topic, group) {
            Ok(Some(position)) => {
                self.positions()
                    .insert((topic.to_owned(), group.to_owned()), position.clone());
                Some(position)
            }
            Ok(None) => None,
            Err(e) => {
                warn!(topic, group, error = %e, "cannot read a group's position; it starts anew");
                None
            }
        }
    }

    fn create(&self, topic: &str, group: &str, index: usize) {
        self.positions()
            .insert((topic.to_owned(), group.to_owned()), (index, BTreeSet::new()));
        let written = self.write(Durability::Immediate, |tx| {
            tx.open_table(NEXT)?.insert((topic, group), index as u64)?;
            Ok(())
        });
        if let Err(e) = written {
            warn!(topic, group, error = %e, "cannot record a new group");
        }
    }

    fn ack(&self, topic: &str, group: &str, index: usize) {
        // The group's next index moves past every acked one in a row.
        let (next, passed) = {
            let mut positions = self.positions();
            let (next, acked) = positions.entry((topic.to_owned(), group.to_owned())).or_default();
            acked.insert(index);
            let mut passed = Vec::new();
            while acked.remove(next) {
                passed.push(*next);
                *next += 1;
            }
            (*next, passed)
        };
        let written = self.write(Durability::None, |tx| {
            let mut acked = tx.open_table(ACKED)?;
            for index in &passed {
                acked.remove((topic, group, *index as u64))?;
            }
            if index >= next {
                acked.insert((topic, group, index as u64), ())?;
            }
            tx.open_table(NEXT)?.insert((topic, group), next as u64)?;
            Ok(())
        });
        if let Err(e) = written {
            warn!(topic, group, error = %e, "cannot record an ack; the event may come again");
        }
    }
}

impl Stream for FileStream {
    fn publish<'a>(
        &'a self,
        topic: &'a str,
        payload: Bytes,
        options: PublishOptions,
    ) -> BoxFuture<'a, Result<String, EventsError>> {
        // The write waits for the disk: off the runtime's threads.
        let stream = self.stream.clone();
        let topic = topic.to_owned();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || stream.publish_now(&topic, payload, options))
                .await
                .map_err(failed)?
        })
    }

    fn consume<'a>(&'a self, topic: &'a str, options: ConsumeOptions) -> BoxFuture<'a, Result<Consumer, EventsError>> {
        self.stream.consume(topic, options)
    }

    fn name(&self) -> &'static str {
        "file"
    }
}
