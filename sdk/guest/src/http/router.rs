//! The router: routes are tried in the order added; a pattern is `/`-separated segments,
//! each literal, `:name` (one non-empty segment, percent-decoded) or, last, `*name` (the
//! rest of the path, possibly empty). Pure but for the clock of `log_requests`.

use super::{Handler, IntoResponse, Request, Response};

type BoxHandler = Box<dyn Fn(&Request) -> Response>;

enum Segment {
    Literal(String),
    Param(String),
    Rest(String),
}

struct Route {
    method: String,
    pattern: Vec<Segment>,
    handler: BoxHandler,
}

/// Method + path routing to handlers.
///
/// ```ignore
/// Router::new()
///     .get("/", index)
///     .get("/users/:id", show_user)
///     .post("/users", create_user)
///     .get("/static/*path", file)
/// ```
#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
    fallback: Option<BoxHandler>,
    log_requests: bool,
}

fn parse(pattern: &str) -> Vec<Segment> {
    let segs: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
    let n = segs.len();
    segs.into_iter()
        .enumerate()
        .filter(|(i, s)| !(s.is_empty() && *i == n - 1 && n == 1))
        .map(|(i, s)| {
            if let Some(name) = s.strip_prefix(':') {
                Segment::Param(name.to_string())
            } else if let Some(name) = s.strip_prefix('*').filter(|_| i == n - 1) {
                Segment::Rest(name.to_string())
            } else {
                Segment::Literal(s.to_string())
            }
        })
        .collect()
}

/// The path parameters if `path` matches `pattern`.
fn matches(pattern: &[Segment], path: &str) -> Option<Vec<(String, String)>> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let segs: Vec<&str> = if trimmed.is_empty() { Vec::new() } else { trimmed.split('/').collect() };
    let mut params = Vec::new();
    let mut i = 0;
    for seg in pattern {
        match seg {
            Segment::Rest(name) => {
                let rest = segs.get(i..).unwrap_or(&[]).join("/");
                params.push((name.clone(), crate::url::decode_segment(&rest)));
                return Some(params);
            }
            Segment::Literal(lit) => {
                if segs.get(i) != Some(&lit.as_str()) {
                    return None;
                }
            }
            Segment::Param(name) => {
                let s = segs.get(i).filter(|s| !s.is_empty())?;
                params.push((name.clone(), crate::url::decode_segment(s)));
            }
        }
        i += 1;
    }
    (i == segs.len()).then_some(params)
}

/// wasi:clocks/monotonic-clock (std's Instant costs ~10 KB more in a component).
fn monotonic_ns() -> u64 {
    if cfg!(target_arch = "wasm32") {
        wasip2::clocks::monotonic_clock::now()
    } else {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(0))
    }
}

impl Router {
    pub fn new() -> Router {
        Router::default()
    }

    /// A route for `method` (any case; `*` for every method).
    pub fn route<F, R>(mut self, method: &str, pattern: &str, handler: F) -> Router
    where
        F: Fn(&Request) -> R + 'static,
        R: IntoResponse,
    {
        self.routes.push(Route {
            method: method.to_ascii_uppercase(),
            pattern: parse(pattern),
            handler: Box::new(move |r| handler(r).into_response()),
        });
        self
    }

    pub fn get<F: Fn(&Request) -> R + 'static, R: IntoResponse>(self, pattern: &str, handler: F) -> Router {
        self.route("GET", pattern, handler)
    }
    pub fn post<F: Fn(&Request) -> R + 'static, R: IntoResponse>(self, pattern: &str, handler: F) -> Router {
        self.route("POST", pattern, handler)
    }
    pub fn put<F: Fn(&Request) -> R + 'static, R: IntoResponse>(self, pattern: &str, handler: F) -> Router {
        self.route("PUT", pattern, handler)
    }
    pub fn patch<F: Fn(&Request) -> R + 'static, R: IntoResponse>(self, pattern: &str, handler: F) -> Router {
        self.route("PATCH", pattern, handler)
    }
    pub fn delete<F: Fn(&Request) -> R + 'static, R: IntoResponse>(self, pattern: &str, handler: F) -> Router {
        self.route("DELETE", pattern, handler)
    }
    /// A route for every method.
    pub fn any<F: Fn(&Request) -> R + 'static, R: IntoResponse>(self, pattern: &str, handler: F) -> Router {
        self.route("*", pattern, handler)
    }

    /// What answers when no route's pattern matches (default: 404 `not found\n`).
    pub fn fallback<F: Fn(&Request) -> R + 'static, R: IntoResponse>(mut self, handler: F) -> Router {
        self.fallback = Some(Box::new(move |r| handler(r).into_response()));
        self
    }

    /// Logs every request once answered, as an `INFO` record (see [`crate::log`]):
    /// `INFO  request method=GET path=/users/7 status=200 us=412`.
    pub fn log_requests(mut self) -> Router {
        self.log_requests = true;
        self
    }

    /// Answers `req` (its path parameters set from the matched route), logging it if
    /// [`Router::log_requests`] is on.
    pub fn dispatch(&self, req: &mut Request) -> Response {
        if !self.log_requests {
            return self.route_request(req);
        }
        let t0 = monotonic_ns();
        let resp = self.route_request(req);
        let us = monotonic_ns().saturating_sub(t0) / 1000;
        crate::info!("request", method = req.method(), path = req.path(), status = resp.status, us = us);
        resp
    }

    fn route_request(&self, req: &mut Request) -> Response {
        let mut allowed: Vec<&str> = Vec::new();
        let head = req.method() == "HEAD";
        let mut head_via_get = None;
        for route in &self.routes {
            let Some(params) = matches(&route.pattern, req.path()) else { continue };
            if route.method == "*" || route.method == req.method() {
                req.set_params(params);
                return (route.handler)(req);
            }
            if head && route.method == "GET" && head_via_get.is_none() {
                head_via_get = Some((route, params));
            }
            if !allowed.contains(&route.method.as_str()) {
                allowed.push(&route.method);
            }
        }
        if let Some((route, params)) = head_via_get {
            req.set_params(params);
            return (route.handler)(req).body(Vec::new());
        }
        if !allowed.is_empty() {
            if allowed.contains(&"GET") && !allowed.contains(&"HEAD") {
                allowed.push("HEAD");
            }
            return Response::text("method not allowed\n").status(405).header("allow", allowed.join(", "));
        }
        match &self.fallback {
            Some(f) => f(req),
            None => Response::not_found(),
        }
    }

    /// Answers a request (same as [`Handler::call`]), e.g. from a unit test.
    pub fn handle(&self, mut req: Request) -> Response {
        self.call(&mut req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> Router {
        Router::new()
            .get("/", |_: &Request| "root\n")
            .get("/users/:id", |r: &Request| format!("user {}\n", r.param("id").unwrap_or("?")))
            .delete("/users/:id", |r: &Request| (204, format!("deleted {}", r.param("id").unwrap_or("?"))))
            .get("/users/:id/posts/:post", |r: &Request| format!("{}/{}\n", r.param("id").unwrap_or(""), r.param("post").unwrap_or("")))
            .post("/echo", |r: &Request| r.body().map(|b| Response::new(200).body(b.to_vec())))
            .get("/files/*path", |r: &Request| format!("file {:?}\n", r.param("path").unwrap_or("")))
            .any("/any", |r: &Request| r.method().to_string())
    }

    fn body(r: &Response) -> &str {
        std::str::from_utf8(&r.body).expect("utf-8")
    }

    #[test]
    fn literal_and_params() {
        let a = app();
        assert_eq!(body(&a.handle(Request::new("GET", "/"))), "root\n");
        assert_eq!(body(&a.handle(Request::new("GET", "/?x=1"))), "root\n");
        assert_eq!(body(&a.handle(Request::new("GET", "/users/42"))), "user 42\n");
        assert_eq!(body(&a.handle(Request::new("GET", "/users/a%20b"))), "user a b\n");
        assert_eq!(body(&a.handle(Request::new("GET", "/users/7/posts/x"))), "7/x\n");
        let r = a.handle(Request::new("DELETE", "/users/9"));
        assert_eq!((r.status, body(&r)), (204, "deleted 9"));
    }

    #[test]
    fn rest_segments() {
        let a = app();
        assert_eq!(body(&a.handle(Request::new("GET", "/files/a/b.txt"))), "file \"a/b.txt\"\n");
        assert_eq!(body(&a.handle(Request::new("GET", "/files/"))), "file \"\"\n");
        assert_eq!(body(&a.handle(Request::new("GET", "/files"))), "file \"\"\n");
    }

    #[test]
    fn not_found_and_method_not_allowed() {
        let a = app();
        for p in ["/nope", "/users", "/users/", "/users/1/extra", "//"] {
            let r = a.handle(Request::new("GET", p));
            assert_eq!((r.status, body(&r)), (404, "not found\n"), "{p}");
        }
        let r = a.handle(Request::new("PUT", "/users/1"));
        assert_eq!((r.status, body(&r)), (405, "method not allowed\n"));
        assert_eq!(r.headers.iter().find(|(k, _)| k == "allow").map(|(_, v)| v.as_slice()), Some(&b"GET, DELETE, HEAD"[..]));
        let custom = Router::new().fallback(|r: &Request| (418, format!("no {}\n", r.path())));
        let r = custom.handle(Request::new("GET", "/x"));
        assert_eq!((r.status, body(&r)), (418, "no /x\n"));
    }

    #[test]
    fn head_uses_get_without_body_and_any_matches_all() {
        let a = app();
        let r = a.handle(Request::new("HEAD", "/users/1"));
        assert_eq!((r.status, r.body.len()), (200, 0));
        assert_eq!(r.headers[0].0, "content-type");
        assert_eq!(body(&a.handle(Request::new("PATCH", "/any"))), "PATCH");
    }

    #[test]
    fn logged_requests_answer_the_same() {
        let r = app().log_requests().handle(Request::new("GET", "/users/5"));
        assert_eq!((r.status, body(&r)), (200, "user 5\n"));
    }

    #[test]
    fn bodies() {
        let a = app();
        let r = a.handle(Request::new("POST", "/echo").with_body("ping"));
        assert_eq!((r.status, body(&r)), (200, "ping"));
    }
}
