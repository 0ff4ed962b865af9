//! Each node in turn, per service.

use std::sync::Mutex;

use foldhash::HashMap;

use super::{Pick, Pool, Selector};

/// Picks the candidates of each service in turn.
#[derive(Debug, Default)]
pub struct RoundRobin {
    turns: Mutex<HashMap<String, usize>>,
}

impl Selector for RoundRobin {
    fn select<'a>(&self, pool: &Pool<'a, '_>) -> Option<Pick<'a>> {
        let len = pool.len();
        if len == 0 {
            return None;
        }
        let name = pool.service_name();
        let index = {
            let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
            // Looked up before inserting, so that a turn copies no name.
            if !turns.contains_key(name) {
                turns.insert(name.to_owned(), 0);
            }
            let turn = turns.get_mut(name)?;
            let index = *turn % len;
            *turn = turn.wrapping_add(1);
            index
        };
        pool.nth(index)
    }
}
