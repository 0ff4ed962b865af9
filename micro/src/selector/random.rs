//! A node at random: Go Micro's default strategy.

use super::{Pick, Pool, Selector};

/// Picks a candidate at random.
#[derive(Clone, Copy, Debug, Default)]
pub struct Random;

impl Selector for Random {
    fn select<'a>(&self, pool: &Pool<'a, '_>) -> Option<Pick<'a>> {
        match pool.len() {
            0 => None,
            len => pool.nth(fastrand::usize(..len)),
        }
    }
}
