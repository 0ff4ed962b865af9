//! Watches the live counter for a moment, then joins the chat room, says
//! its lines, and prints what the room says back.
//!
//! ```sh
//! cargo run -p micro-examples --example live-client -- alice hello everyone
//! ```
//!
//! The service is found over mDNS.

use std::time::Duration;

use micro::Client;
use micro_examples::live::{ChatMessage, CountRequest, LiveClient};

#[tokio::main]
async fn main() -> micro::Result<()> {
    micro::logging::init();
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "alice".to_owned());
    let lines: Vec<String> = args.collect();
    let live = LiveClient::new("live", Client::default());

    // A server stream: numbers arrive as the server counts.
    let mut counts = live
        .counter(CountRequest {
            from: 1,
            every_ms: 100,
            to: Some(5),
        })
        .await?;
    while let Some(count) = counts.recv().await? {
        println!("count {}", count.n);
    }

    // A bidirectional stream: send and receive independently.
    let (tx, mut rx) = live.chat().await?.split();
    let listening = tokio::spawn(async move {
        while let Ok(Some(message)) = rx.recv().await {
            println!("{}: {}", message.from, message.text);
        }
    });
    let lines = if lines.is_empty() {
        vec!["hello".to_owned()]
    } else {
        lines
    };
    for text in lines {
        tx.send(ChatMessage {
            from: name.clone(),
            text,
        })
        .await?;
    }
    // Let the room answer, then leave.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(tx);
    listening.abort();
    Ok(())
}
