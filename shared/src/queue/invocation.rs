//! A queue script's call while it is built, then sent by SHA (`EVALSHA`) and, when Redis
//! answers `NOSCRIPT`, loaded and sent again, as redis' own `ScriptInvocation` does. That
//! one keeps every key and argument in a `Vec` of its own, then copies them all into the
//! command; here they are written into one buffer each (a [`Cmd`]'s), so building a call
//! allocates a few times instead of once per argument. A detail job's ack carries about
//! eighty, and their allocations were a few percent of a worker's CPU.

use redis::aio::ConnectionLike;
use redis::ToRedisArgs;
use redis::{Arg, Cmd, ErrorKind, FromRedisValue, RedisResult, Script, ServerErrorKind};

/// One call of `script`: its keys (`KEYS`) and arguments (`ARGV`), each in the order added.
pub(crate) struct Invocation<'a> {
    script: &'a Script,
    keys: Cmd,
    args: Cmd,
}

impl<'a> Invocation<'a> {
    /// A call of `script` with no keys or arguments yet.
    pub(crate) fn new(script: &'a Script) -> Self {
        Self {
            script,
            keys: Cmd::new(),
            args: Cmd::new(),
        }
    }

    /// Adds a key (or each key `key` holds, as [`Cmd::arg`] would).
    pub(crate) fn key<T: ToRedisArgs>(&mut self, key: T) -> &mut Self {
        self.keys.arg(key);
        self
    }

    /// Adds an argument (or each argument `arg` holds, as [`Cmd::arg`] would).
    pub(crate) fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        self.args.arg(arg);
        self
    }

    /// Runs the call, loading the script first if Redis does not know it.
    pub(crate) async fn invoke<T: FromRedisValue>(
        &self,
        conn: &mut impl ConnectionLike,
    ) -> RedisResult<T> {
        let call = self.evalsha();
        match call.query_async(conn).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.script.load_async(conn).await?;
                call.query_async(conn).await
            }
            answer => answer,
        }
    }

    /// `EVALSHA <sha> <number of keys> <keys…> <arguments…>`, its buffers sized up front.
    fn evalsha(&self) -> Cmd {
        let parts = || self.keys.args_iter().chain(self.args.args_iter());
        let bytes: usize = parts().map(|part| simple(&part).len()).sum();
        let keys = self.keys.args_iter().len();
        let mut cmd = Cmd::with_capacity(3 + keys + self.args.args_iter().len(), bytes + 64);
        cmd.arg("EVALSHA").arg(self.script.get_hash()).arg(keys);
        for part in parts() {
            cmd.arg(simple(&part));
        }
        cmd
    }
}

/// The bytes of a key or argument (`Cmd::arg` writes no other kind).
fn simple<'b>(part: &Arg<&'b [u8]>) -> &'b [u8] {
    if let Arg::Simple(bytes) = part {
        bytes
    } else {
        &[]
    }
}
