#!/usr/bin/env bash
# The compile cost of #[micro::service]: a 50-endpoint service through the
# macro against the same surface written by hand (the Handler dispatch, the
# descriptor and a typed client). Each crate is rebuilt after a touch, in
# dev and in release, three times; the medians and their ratio are printed.
#
#   benches/compile-cost.sh [ENDPOINTS]
set -euo pipefail
endpoints=${1:-50}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CARGO_TARGET_DIR="$work/target"
# A touch must mean a full rebuild of the crate, not an incremental no-op.
export CARGO_INCREMENTAL=0

crate() { # name, lib.rs body
  mkdir -p "$work/$1/src"
  cat > "$work/$1/Cargo.toml" <<EOF
[package]
name = "$1"
version = "0.0.0"
edition = "2024"
publish = false

[workspace]

[dependencies]
micro = { path = "$repo/micro" }
serde = { version = "1", features = ["derive"] }
EOF
  printf '%s\n' "$2" > "$work/$1/src/lib.rs"
}

types='use micro::prelude::*;

#[derive(Serialize, Deserialize)]
pub struct Request {
    pub name: String,
}

#[derive(Serialize, Deserialize)]
pub struct Response {
    pub message: String,
}

pub struct Big;
'

macro_src="$types
#[micro::service]
impl Big {"
for i in $(seq 1 "$endpoints"); do
  macro_src+="
    /// Endpoint $i.
    #[endpoint]
    async fn call_$i(&self, req: Request) -> Result<Response> {
        Ok(Response { message: format!(\"$i {}\", req.name) })
    }"
done
macro_src+="
}"

hand_src="$types
use std::sync::Arc;

use micro::BoxFuture;
use micro::codec::Codec;
use micro::registry::Value;
use micro::server::{EndpointDescriptor, Handler, Response as Encoded, ServiceDescriptor};
use micro::stream::Kind;

impl Big {"
for i in $(seq 1 "$endpoints"); do
  hand_src+="
    /// Endpoint $i.
    pub async fn call_$i(&self, req: Request) -> Result<Response> {
        Ok(Response { message: format!(\"$i {}\", req.name) })
    }"
done
hand_src+="
}

fn request_value() -> Value {
    Value { name: \"Request\".into(), ty: \"Request\".into(), values: Vec::new() }
}

fn response_value() -> Value {
    Value { name: \"Response\".into(), ty: \"Response\".into(), values: Vec::new() }
}

static ENDPOINTS: &[EndpointDescriptor] = &["
for i in $(seq 1 "$endpoints"); do
  hand_src+="
    EndpointDescriptor::__new(\"Big.Call$i\", \"Call$i\", \"Endpoint $i.\", request_value, response_value, false, Kind::Unary),"
done
hand_src+="
];

static DESCRIPTOR: ServiceDescriptor = ServiceDescriptor::__new(\"Big\", \"big::Big\", \"\", ENDPOINTS, &[]);

async fn unary<F, Fut>(codec: Codec, body: bytes::Bytes, f: F) -> Result<Encoded>
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Result<Response>>,
{
    let request: Request = codec.decode_request(&body).map_err(|e| e.into_error(\"go.micro.server\"))?;
    let response = f(request).await?;
    let body = codec.encode(&response).map_err(|e| e.into_error(\"go.micro.server\"))?;
    Ok(Encoded::new(codec, body))
}

impl Handler for Big {
    fn descriptor(&self) -> &'static ServiceDescriptor {
        &DESCRIPTOR
    }

    fn call(self: Arc<Self>, request: micro::server::Request) -> BoxFuture<'static, Result<Encoded>> {
        let method = request.method().to_owned();
        let (_context, codec, body) = request.into_parts();
        match method.as_str() {"
for i in $(seq 1 "$endpoints"); do
  hand_src+="
            \"Call$i\" => Box::pin(async move { unary(codec, body, |req| self.call_$i(req)).await }),"
done
hand_src+="
            other => {
                let error = Error::not_found(\"go.micro.server\", format!(\"unknown endpoint Big.{other}\"));
                Box::pin(std::future::ready(Err(error)))
            }
        }
    }
}

/// The typed client.
#[derive(Clone, Debug)]
pub struct BigClient {
    service: String,
    client: Client,
}

impl BigClient {
    pub fn new(service: impl Into<String>, client: Client) -> Self {
        BigClient { service: service.into(), client }
    }"
for i in $(seq 1 "$endpoints"); do
  hand_src+="

    /// Endpoint $i.
    pub fn call_$i(&self, request: Request) -> micro::client::Call<Request, Response> {
        self.client.call(self.service.clone(), \"Big.Call$i\", request)
    }"
done
hand_src+="
}"

crate generated "$macro_src"
crate handwritten "$hand_src"
sed -i 's/^\[dependencies\]/[dependencies]\nbytes = "1"/' "$work/handwritten/Cargo.toml"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
measure() { # crate, profile flag
  (cd "$work/$1" && cargo build -q --offline $2) || { echo "$1 does not build" >&2; exit 1; } # dependencies, once
  for _ in 1 2 3; do
    touch "$work/$1/src/lib.rs"
    local start end
    start=$(date +%s.%N)
    (cd "$work/$1" && cargo build -q --offline $2)
    end=$(date +%s.%N)
    echo "$end - $start" | bc
  done | median
}

printf '| profile | #[micro::service] s | by hand s | ratio |\n|---|---:|---:|---:|\n'
for profile in dev release; do
  flag=""
  [ "$profile" = release ] && flag="--release"
  generated=$(measure generated "$flag")
  handwritten=$(measure handwritten "$flag")
  ratio=$(echo "scale=2; $generated / $handwritten" | bc)
  printf '| %s | %.2f | %.2f | %s |\n' "$profile" "$generated" "$handwritten" "$ratio"
done
echo "($endpoints endpoints; the crate alone rebuilt after a touch; median of 3)"
