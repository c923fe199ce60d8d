//! A protocol subcommand as the driver runs it: once, against a direct address and the
//! target in turn (`--compare`), or at rising rates (`capacity`). Every protocol's flags
//! implement [`Plan`]; the report of any of the three is a [`Report`].

use std::future::Future;

use serde_json::Value;

use super::{
    LoadArgs, LoadError, RunResult, capacity::Capacity, compare::Comparison, dns::DnsArgs,
    dubbo::DubboArgs, grpc::GrpcArgs, http::HttpArgs, redis::RedisArgs, summary::Summary,
    thrift::ThriftArgs,
};

/// A protocol subcommand's flags.
pub trait Plan: Clone + Send + Sync + 'static {
    /// The shared load flags.
    fn load(&self) -> &LoadArgs;
    /// The shared load flags, to change the rate or the progress label of one run.
    fn load_mut(&mut self) -> &mut LoadArgs;
    /// Where the calls go, as the report shows it.
    fn target(&self) -> String;
    /// Sends the same calls to `addr` (host:port) instead: `--compare`'s direct side.
    fn retarget(&mut self, addr: &str);
    /// Runs the load once.
    fn run(&self) -> impl Future<Output = Result<RunResult, LoadError>> + Send;
}

/// Runs `plan` once, its progress line labelled `label`, and names its target.
pub async fn run_once<P: Plan>(plan: &P, label: Option<String>) -> Result<RunResult, LoadError> {
    let mut plan = plan.clone();
    plan.load_mut().label = label;
    let mut result = plan.run().await?;
    result.settings.target = plan.target();
    Ok(result)
}

/// Runs `plan` as its flags say: once, or as a comparison with `--compare`.
pub async fn execute<P: Plan>(plan: &P) -> Result<Report, LoadError> {
    let load = plan.load();
    match &load.compare {
        Some(direct) => Ok(Report::Compare(
            super::compare::run(plan, direct, load.rounds).await?,
        )),
        None => Ok(Report::Run(run_once(plan, None).await?)),
    }
}

/// What a command measured.
#[derive(Debug)]
// One per command: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Report {
    /// One run.
    Run(RunResult),
    /// Direct and through the gateway.
    Compare(Comparison),
    /// A capacity search.
    Capacity(Capacity),
}

impl Report {
    /// The JSON object `--json` prints, as one line with its fields in the documented
    /// order.
    pub fn json_line(&self) -> String {
        let line = match self {
            Self::Run(r) => serde_json::to_string(&Summary::of(r)),
            Self::Compare(c) => serde_json::to_string(&c.json()),
            Self::Capacity(c) => serde_json::to_string(&c.json()),
        };
        // Plain structs of numbers, strings and maps with string keys: cannot fail.
        line.unwrap_or_default()
    }

    /// The JSON object as a value (for the HTML report).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.json_line()).unwrap_or(Value::Null)
    }

    /// The text printed without `--json`.
    pub fn text(&self) -> String {
        match self {
            Self::Run(r) => Summary::of(r).text(),
            Self::Compare(c) => c.text(),
            Self::Capacity(c) => c.text(),
        }
    }

    /// Calls that failed, over every run.
    pub fn errors(&self) -> u64 {
        self.runs().map(|r| r.errors).sum()
    }

    /// The first failure of any run.
    pub fn first_error(&self) -> Option<&str> {
        self.runs().find_map(|r| r.first_error.as_deref())
    }

    fn runs(&self) -> Box<dyn Iterator<Item = &RunResult> + '_> {
        match self {
            Self::Run(r) => Box::new(std::iter::once(r)),
            Self::Compare(c) => Box::new([&c.direct, &c.gateway].into_iter()),
            Self::Capacity(c) => Box::new(c.steps.iter().map(|s| &s.result)),
        }
    }
}

// === impl Plan for the protocols ===

/// `Plan` for a protocol whose flags have `target: String` and `load`.
macro_rules! plan_with_target {
    ($args:ty, $run:path) => {
        impl Plan for $args {
            fn load(&self) -> &LoadArgs {
                &self.load
            }
            fn load_mut(&mut self) -> &mut LoadArgs {
                &mut self.load
            }
            fn target(&self) -> String {
                self.target.clone()
            }
            fn retarget(&mut self, addr: &str) {
                self.target = addr.to_owned();
            }
            fn run(&self) -> impl Future<Output = Result<RunResult, LoadError>> + Send {
                $run(self)
            }
        }
    };
}

plan_with_target!(GrpcArgs, super::grpc::run);
plan_with_target!(DubboArgs, super::dubbo::run);
plan_with_target!(ThriftArgs, super::thrift::run);
plan_with_target!(RedisArgs, super::redis::run);
plan_with_target!(DnsArgs, super::dns::run);

impl Plan for HttpArgs {
    fn load(&self) -> &LoadArgs {
        &self.load
    }
    fn load_mut(&mut self) -> &mut LoadArgs {
        &mut self.load
    }
    fn target(&self) -> String {
        match (&self.url, &self.target) {
            (Some(url), _) => url.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => String::new(),
        }
    }
    fn retarget(&mut self, addr: &str) {
        // The same path and query, asked of `addr`.
        if let Some(url) = self.url.take() {
            self.path = url
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        }
        self.target = Some(addr.to_owned());
    }
    fn run(&self) -> impl Future<Output = Result<RunResult, LoadError>> + Send {
        super::http::run(self)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        http: HttpArgs,
    }

    #[test]
    fn an_http_url_is_retargeted_with_its_path_and_query() {
        let mut args = Cli::parse_from(["x", "--url", "http://gw.example:8080/a/b?c=1"]).http;
        assert_eq!(args.target(), "http://gw.example:8080/a/b?c=1");
        args.retarget("127.0.0.1:9000");
        assert_eq!(args.target(), "127.0.0.1:9000");
        assert_eq!(
            args.uri().unwrap().to_string(),
            "http://127.0.0.1:9000/a/b?c=1"
        );
    }

    #[test]
    fn an_http_target_keeps_its_path() {
        let mut args = Cli::parse_from(["x", "--target", "gw:80", "--path", "/p"]).http;
        args.retarget("10.0.0.1:80");
        assert_eq!(args.uri().unwrap().to_string(), "http://10.0.0.1:80/p");
    }
}
