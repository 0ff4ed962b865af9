//! A live counter and a chat room: a server stream and a bidirectional one.

use std::time::Duration;

use micro::prelude::*;
use micro::stream::{Receiver, Sender};
use tokio::sync::broadcast;

/// Where to count from and how fast.
#[derive(Debug, Serialize, Deserialize)]
pub struct CountRequest {
    /// The first number.
    pub from: u64,
    /// Milliseconds between numbers.
    pub every_ms: u64,
    /// The last number; none counts until the caller leaves.
    pub to: Option<u64>,
}

/// One number of the count.
#[derive(Debug, Serialize, Deserialize)]
pub struct Count {
    /// The number.
    pub n: u64,
}

/// A line of the chat.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who wrote it.
    pub from: String,
    /// What they wrote.
    pub text: String,
}

/// The live service: a counter and a chat room shared by every member.
pub struct Live {
    room: broadcast::Sender<ChatMessage>,
}

impl Default for Live {
    fn default() -> Self {
        let (room, _) = broadcast::channel(256);
        Live { room }
    }
}

#[micro::service]
impl Live {
    /// Counts up every `every_ms` until `to`, or until the caller leaves.
    #[endpoint]
    pub async fn counter(&self, req: CountRequest, tx: Sender<Count>) -> Result<()> {
        let mut n = req.from;
        let mut tick = tokio::time::interval(Duration::from_millis(req.every_ms.max(1)));
        loop {
            tick.tick().await;
            tx.send(Count { n }).await?;
            if req.to.is_some_and(|to| n >= to) {
                return Ok(());
            }
            n += 1;
        }
    }

    /// Joins the chat room: what a member sends goes to every member.
    #[endpoint]
    pub async fn chat(&self, mut rx: Receiver<ChatMessage>, tx: Sender<ChatMessage>) -> Result<()> {
        let mut room = self.room.subscribe();
        // Deliver the room to this member while reading what they write.
        let deliver = tokio::spawn(async move {
            loop {
                match room.recv().await {
                    Ok(message) => {
                        if tx.send(message).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        while let Some(message) = rx.recv().await? {
            // Nobody listening is not an error: the message just has no audience.
            let _ = self.room.send(message);
        }
        deliver.abort();
        Ok(())
    }
}
