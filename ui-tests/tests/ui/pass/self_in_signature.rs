use micro::prelude::*;

#[derive(Serialize, Deserialize)]
pub struct Node {
    pub children: Vec<Node>,
}

impl Node {
    pub fn leaf() -> Self {
        Node { children: Vec::new() }
    }
}

#[micro::service]
impl Node {
    /// `Self` in a signature names the service type.
    #[endpoint]
    async fn echo(&self, req: Self) -> Result<Self> {
        Ok(req)
    }
}

fn main() {
    let client = NodeClient::new("node", Client::default());
    let _: micro::client::Call<Node, Node> = client.echo(Node::leaf());
    let shape = micro::server::Handler::descriptor(&Node::leaf()).endpoints()[0].request();
    assert_eq!(shape.name, "Node");
    assert_eq!(shape.values[0].ty, "[]Node");
}
