//! The Flotilla hello sample: an HTTP component written with the guest SDK
//! (sdk/guest). `GET /` answers "<GREETING> from <POD_NAME>\n", where both come from
//! the environment the pod spec grants; any other path is 404 `not found`.

#![forbid(unsafe_code)]

use flotilla_guest::env;
use flotilla_guest::http::{Request, Router};

fn app() -> Router {
    Router::new().get("/", hello)
}

fn hello(_req: &Request) -> String {
    let greeting = env::var_or("GREETING", "Hello");
    let pod = env::var_or("POD_NAME", "Flotilla");
    format!("{greeting} from {pod}\n")
}

flotilla_guest::serve!(app);
