#[micro::service]
pub struct Greeter;

fn main() {}
