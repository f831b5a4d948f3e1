//! Well-known C paths of the Go standard library: a cgo call's Go stack
//! names the C function (through the `_Cfunc_`/`_C2func_` stub cgo
//! generates) and the Go API that led to it, and the well-known ones come
//! with the fix people use.

use serde::Serialize;

use crate::gobin::symbolize::Frame;

/// What a cgo call was.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct CgoCall {
    /// The C function called (`getaddrinfo`).
    pub c_function: String,
    /// The Go API of the standard library that led to it
    /// (`net.LookupHost`), when the call came through one.
    pub go_api: Option<String>,
    /// A well-known path: what it is and the usual fix.
    pub known: Option<KnownPath>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KnownPath {
    /// Name resolution through libc (`getaddrinfo`, `getnameinfo`): the
    /// cgo DNS resolver; each lookup holds a thread for as long as the
    /// nameserver takes (its timeout when it does not answer).
    LibcDns,
    /// User and group lookups through libc NSS (`os/user`).
    LibcUserLookup,
}

impl KnownPath {
    pub fn what(self) -> &'static str {
        match self {
            Self::LibcDns => "DNS resolution through libc (Go's cgo resolver)",
            Self::LibcUserLookup => "user/group lookups through libc (os/user's cgo path)",
        }
    }

    pub fn fix(self) -> &'static str {
        match self {
            Self::LibcDns => {
                "use Go's own resolver (GODEBUG=netdns=go, or build with -tags netgo), which waits \
                 in the netpoller without holding a thread; or bound concurrent lookups"
            }
            Self::LibcUserLookup => {
                "build with -tags osusergo (pure-Go /etc/passwd and /etc/group parsing), or cache \
                 the lookups and bound their concurrency"
            }
        }
    }

    fn of(c_function: &str) -> Option<Self> {
        match c_function {
            "getaddrinfo" | "getnameinfo" | "res_search" | "res_nsearch" | "res_query" => {
                Some(Self::LibcDns)
            }
            "getpwnam_r" | "getpwuid_r" | "getgrnam_r" | "getgrgid_r" | "getgrouplist" => {
                Some(Self::LibcUserLookup)
            }
            _ => None,
        }
    }
}

/// Standard-library packages whose exported functions are "the Go API"
/// for a C path.
fn api_package(function: &str) -> bool {
    ["net.", "os/user.", "os.", "plugin."]
        .iter()
        .any(|p| function.starts_with(p))
}

/// An exported Go function or method (`net.LookupHost`,
/// `net.(*Resolver).LookupHost`).
fn exported(function: &str) -> bool {
    let name = function.rsplit('.').next().unwrap_or("");
    name.chars().next().is_some_and(char::is_uppercase)
}

/// The cgo call a Go stack (innermost first) made, if it went through a
/// cgo stub.
pub fn cgo_call(stack: &[Frame]) -> Option<CgoCall> {
    let (index, stub) = stack.iter().enumerate().find_map(|(i, f)| {
        let name = f.function.as_str();
        let c = name
            .split_once("._C2func_")
            .or_else(|| name.split_once("._Cfunc_"))
            .map(|(_, c)| c)?;
        Some((i, c))
    })?;
    // os/user wraps the libc calls in its own C helpers (mygetpwnam_r).
    let c_function = stub.strip_prefix("my").unwrap_or(stub).to_owned();
    // The outermost exported standard-library frame before the program's
    // own code: what the program called.
    let go_api = stack[index + 1..]
        .iter()
        .take_while(|f| api_package(&f.function) || f.function.starts_with("internal/"))
        .filter(|f| api_package(&f.function) && exported(&f.function))
        .last()
        .map(|f| f.function.clone());
    Some(CgoCall {
        known: KnownPath::of(&c_function),
        c_function,
        go_api,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(names: &[&str]) -> Vec<Frame> {
        names
            .iter()
            .map(|n| Frame {
                function: (*n).into(),
                file: "x.go".into(),
                line: 1,
            })
            .collect()
    }

    #[test]
    fn names_the_dns_path() {
        let s = stack(&[
            "runtime.cgocall",
            "net._C2func_getaddrinfo",
            "net.cgoLookupHostIP.func1",
            "net.doBlockingWithCtx[...]",
            "net.cgoLookupHostIP",
            "net.(*Resolver).lookupIP",
            "net.(*Resolver).lookupHost",
            "net.(*Resolver).LookupHost",
            "net.LookupHost",
            "main.main.func1",
        ]);
        let c = cgo_call(&s).unwrap();
        assert_eq!(c.c_function, "getaddrinfo");
        assert_eq!(c.go_api.as_deref(), Some("net.LookupHost"));
        assert_eq!(c.known, Some(KnownPath::LibcDns));
    }

    #[test]
    fn names_user_lookups_and_unknown_c() {
        let s = stack(&[
            "os/user._Cfunc_mygetpwnam_r",
            "os/user.lookupUser.func1",
            "os/user.retryWithBuffer",
            "os/user.lookupUser",
            "os/user.Lookup",
            "main.main",
        ]);
        let c = cgo_call(&s).unwrap();
        assert_eq!(c.c_function, "getpwnam_r");
        assert_eq!(c.go_api.as_deref(), Some("os/user.Lookup"));
        assert_eq!(c.known, Some(KnownPath::LibcUserLookup));
        let s = stack(&["main._Cfunc_block_in_c", "main.worker"]);
        let c = cgo_call(&s).unwrap();
        assert_eq!(
            (c.c_function.as_str(), c.go_api, c.known),
            ("block_in_c", None, None)
        );
        assert!(cgo_call(&stack(&["syscall.read", "main.main"])).is_none());
    }
}
