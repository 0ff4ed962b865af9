//! Todos: a service that keeps its state in the service's store, the
//! embedded file store by default (`$HOME/micro/todo/store/micro.redb`, or
//! `--data_dir`), PostgreSQL by flag, unchanged:
//!
//! ```text
//! cargo run -p micro-examples --example todo
//! curl -XPOST -H 'Content-Type: application/json' -H 'Micro-Endpoint: Todos.Add' \
//!      -d '{"title": "write the docs"}' http://localhost:8082
//! curl -XPOST -H 'Content-Type: application/json' -H 'Micro-Endpoint: Todos.Done' \
//!      -d '{"id": 1}' http://localhost:8082
//! curl -XPOST -H 'Content-Type: application/json' -H 'Micro-Endpoint: Todos.List' \
//!      -d '{}' http://localhost:8082
//!
//! # the same, on PostgreSQL (micro-examples built with micro's `postgres` feature):
//! cargo run -p micro-examples --features postgres --example todo -- \
//!      --store postgres --store_address postgres://postgres@127.0.0.1:5432/postgres
//! ```
//!
//! Ids come from a counter in the store, incremented with a conditional
//! write: two instances sharing a PostgreSQL table never hand out one id
//! twice. Marking a todo done is conditional too, so a concurrent change is
//! never overwritten silently.

use std::sync::Arc;

use micro::prelude::*;
use micro::store::{ReadOptions, Store, WriteOptions};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Todo {
    id: u64,
    title: String,
    done: bool,
}

#[derive(Debug, Deserialize)]
struct Add {
    title: String,
}

#[derive(Debug, Deserialize)]
struct Done {
    id: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct List {
    /// Only the open ones.
    open: bool,
}

#[derive(Debug, Serialize)]
struct TodoList {
    todos: Vec<Todo>,
}

/// Keeps todos.
struct Todos {
    store: Arc<dyn Store>,
}

fn key(id: u64) -> String {
    format!("todo/{id:08}")
}

impl Todos {
    /// The next id: the counter read, then written back only if no one
    /// wrote it meanwhile (else read again).
    async fn next_id(&self) -> Result<u64> {
        loop {
            let (next, options) = match self.store.get_record("next-id", ReadOptions::default()).await {
                Ok(record) => {
                    let last: u64 = serde_json::from_slice(&record.value).unwrap_or(0);
                    (last + 1, WriteOptions::default().if_version(record.version))
                }
                Err(e) if e.is_not_found() => (1, WriteOptions::default().create_only()),
                Err(e) => return Err(e.into()),
            };
            match self.store.put_with("next-id", &next, options).await {
                Ok(_) => return Ok(next),
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[micro::service]
impl Todos {
    /// Adds a todo.
    #[endpoint]
    async fn add(&self, add: Add) -> Result<Todo> {
        let todo = Todo {
            id: self.next_id().await?,
            title: add.title,
            done: false,
        };
        self.store.put(&key(todo.id), &todo).await?;
        Ok(todo)
    }

    /// Marks a todo done (404 if there is none).
    #[endpoint]
    async fn done(&self, done: Done) -> Result<Todo> {
        loop {
            let record = self.store.get_record(&key(done.id), ReadOptions::default()).await?;
            let mut todo: Todo = serde_json::from_slice(&record.value)
                .map_err(|e| micro::Error::internal_server_error("todo", e.to_string()))?;
            todo.done = true;
            let options = WriteOptions::default().if_version(record.version);
            match self.store.put_with(&key(done.id), &todo, options).await {
                Ok(_) => return Ok(todo),
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The todos, oldest first.
    #[endpoint]
    async fn list(&self, list: List) -> Result<TodoList> {
        let records = self.store.read("todo/", ReadOptions::default().prefix()).await?;
        let mut todos = Vec::with_capacity(records.len());
        for record in records {
            let todo: Todo = serde_json::from_slice(&record.value)
                .map_err(|e| micro::Error::internal_server_error("todo", e.to_string()))?;
            if !(list.open && todo.done) {
                todos.push(todo);
            }
        }
        Ok(TodoList { todos })
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    micro::logging::init();
    let service = Service::new("todo").address("127.0.0.1:8082");
    let store = service.store().await?;
    service.handle(Todos { store }).run().await
}
