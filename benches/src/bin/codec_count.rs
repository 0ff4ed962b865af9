//! micro's codec layer against bare serde calls, counted in instructions:
//! runs one case a given number of times, for `valgrind --tool=callgrind`.
//! The difference between two runs of different lengths, divided by the
//! difference in calls, is the count of one call: the same on every run,
//! where times on a shared machine are not. `benches/codec-count.sh` runs
//! every case so and prints the table.
//!
//! ```sh
//! benches/target/release/codec-count small/encode/json/micro 10000
//! ```

#[path = "../../benches/common/mod.rs"]
mod common;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cases = common::cases();
    let (Some(name), Some(Ok(times))) = (args.first(), args.get(1).map(|n| n.parse::<u64>())) else {
        eprintln!("usage: codec-count <case> <times>; cases:");
        for (name, _) in &cases {
            eprintln!("  {name}");
        }
        std::process::exit(2);
    };
    let Some((_, case)) = cases.iter().find(|(n, _)| n == name) else {
        eprintln!("no case {name}");
        std::process::exit(2);
    };
    for _ in 0..times {
        case();
    }
}
