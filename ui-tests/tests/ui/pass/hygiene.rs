#![no_implicit_prelude]

mod service {
    #[derive(::serde::Serialize, ::serde::Deserialize)]
    pub struct Request {
        pub name: ::std::string::String,
    }

    #[derive(::serde::Serialize, ::serde::Deserialize)]
    pub struct Response {
        pub message: ::std::string::String,
    }

    pub struct Hygienic;

    #[::micro::service]
    impl Hygienic {
        #[::micro::endpoint]
        async fn hello(&self, req: Request) -> ::micro::Result<Response> {
            ::std::result::Result::Ok(Response { message: req.name })
        }
    }

    // Names that generated code must not pick up by accident. (The typed
    // client's parameter is called `request` for readable docs, so a unit
    // struct of that name is the one collision left to the user.)
    #[allow(dead_code, non_camel_case_types)]
    struct ctx;
    #[allow(dead_code, non_camel_case_types)]
    struct message;
    #[allow(dead_code)]
    type Result = ();
    #[allow(dead_code)]
    type Option = ();
}

fn main() {
    let _client = service::HygienicClient::new("hygienic", <::micro::Client as ::std::default::Default>::default());
}
