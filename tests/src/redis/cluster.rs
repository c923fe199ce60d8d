//! A Redis Cluster of real `redis-server --cluster-enabled yes` nodes, joined with
//! `redis-cli --cluster create`, and the operations the gateway must follow: the slot map,
//! and a manual slot migration (IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE) that clients
//! see as `-ASK` while it runs and `-MOVED` once it is done.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};

use super::resp::{Resp, RespConn};
use super::slots::{SLOTS, SlotRange, key_slot, owner_in, parse_slots};
use super::{RedisOptions, RedisServer};
use crate::eventually::eventually;
use crate::mesh::Mesh;

/// How long `redis-cli --cluster create` and the convergence after it (or after a slot
/// moves) may take; gossip between nodes usually settles within a second or two.
const CLUSTER_PATIENCE: Duration = Duration::from_secs(30);

/// The `MIGRATE` timeout in milliseconds (per call, between two local servers).
const MIGRATE_TIMEOUT_MS: &str = "5000";

/// A running Redis Cluster; every node is killed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    /// Every node, in creation order (masters first unless redis-cli reordered them).
    pub nodes: Vec<RedisServer>,
    /// Replicas per master, once they have synced.
    replicas: usize,
    password: Option<String>,
}

impl RedisCluster {
    /// `masters` cluster nodes without replicas, slots spread evenly.
    pub async fn start(mesh: &mut Mesh, masters: usize) -> anyhow::Result<RedisCluster> {
        RedisCluster::start_with(mesh, masters, 0, RedisOptions::new()).await
    }

    /// `masters * (1 + replicas)` nodes on distinct loopback addresses of `mesh`, all on
    /// one port, joined with `redis-cli --cluster create --cluster-replicas <replicas>`;
    /// returns once every node reports `cluster_state:ok` and the same slot map.
    pub async fn start_with(
        mesh: &mut Mesh,
        masters: usize,
        replicas: usize,
        options: RedisOptions,
    ) -> anyhow::Result<RedisCluster> {
        let options = options.cluster();
        let mut nodes: Vec<RedisServer> = Vec::new();
        for _ in 0..masters * (1 + replicas) {
            let port = nodes.first().map_or(0, |n| n.addr.port());
            nodes.push(RedisServer::start(mesh.upstream_addr(port), options.clone()).await?);
        }
        let addrs: Vec<String> = nodes.iter().map(|n| n.addr.to_string()).collect();
        let mut create = vec!["--cluster", "create"];
        create.extend(addrs.iter().map(String::as_str));
        let replicas_arg = replicas.to_string();
        create.extend(["--cluster-replicas", &replicas_arg, "--cluster-yes"]);
        let Some(first) = nodes.first() else {
            bail!("a cluster needs at least one node");
        };
        let out = first.cli().output(&create).await?;
        if !out.success || !out.stdout.contains("All 16384 slots covered") {
            bail!(
                "redis-cli --cluster create failed:\n{}\n{}",
                out.stdout,
                out.stderr
            );
        }
        let cluster = RedisCluster {
            nodes,
            replicas,
            password: options.password,
        };
        cluster.wait_agreed().await;
        Ok(cluster)
    }

    /// The first node's address: a seed for cluster-aware clients.
    pub fn seed(&self) -> SocketAddr {
        self.nodes
            .first()
            .map_or_else(|| panic!("empty cluster"), |n| n.addr)
    }

    /// Every node's address.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.addr).collect()
    }

    /// The node listening on `addr`.
    pub fn node(&self, addr: SocketAddr) -> Option<&RedisServer> {
        self.nodes.iter().find(|n| n.addr == addr)
    }

    async fn connect(&self, addr: SocketAddr) -> anyhow::Result<RespConn> {
        RespConn::connect_auth(addr, None, self.password.as_deref()).await
    }

    /// `CLUSTER SLOTS` as the first node sees it, sorted by start slot.
    pub async fn slots(&self) -> anyhow::Result<Vec<SlotRange>> {
        self.slots_from(self.seed()).await
    }

    /// `CLUSTER SLOTS` as the node at `addr` sees it, sorted by start slot.
    pub async fn slots_from(&self, addr: SocketAddr) -> anyhow::Result<Vec<SlotRange>> {
        let reply = self
            .connect(addr)
            .await?
            .command(&["CLUSTER", "SLOTS"])
            .await?;
        parse_slots(&reply).with_context(|| format!("CLUSTER SLOTS from {addr}: {reply:?}"))
    }

    /// The master serving `slot`, per the first node.
    pub async fn owner(&self, slot: u16) -> anyhow::Result<SocketAddr> {
        owner_in(&self.slots().await?, slot)
    }

    /// The masters, in slot order.
    pub async fn masters(&self) -> anyhow::Result<Vec<SocketAddr>> {
        let mut masters: Vec<SocketAddr> = Vec::new();
        for range in self.slots().await? {
            if !masters.contains(&range.master) {
                masters.push(range.master);
            }
        }
        Ok(masters)
    }

    /// A key `<prefix><n>` whose slot `master` serves (the smallest such n).
    pub async fn key_on(&self, master: SocketAddr, prefix: &str) -> anyhow::Result<String> {
        let slots = self.slots().await?;
        (0..100_000)
            .map(|n| format!("{prefix}{n}"))
            .find(|key| {
                owner_in(&slots, key_slot(key.as_bytes())).is_ok_and(|owner| owner == master)
            })
            .ok_or_else(|| anyhow!("no key `{prefix}<n>` lands on {master}"))
    }

    /// `CLUSTER INFO` of one node.
    pub async fn info(&self, addr: SocketAddr) -> anyhow::Result<String> {
        let reply = self
            .connect(addr)
            .await?
            .command(&["CLUSTER", "INFO"])
            .await?;
        reply
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("CLUSTER INFO answered {reply:?}"))
    }

    /// Waits until every node says `cluster_state:ok` and reports the same slot map, with
    /// every slot covered and every replica listed (a replica shows up in `CLUSTER SLOTS`
    /// once it has synced with its master).
    pub async fn wait_agreed(&self) {
        eventually(
            CLUSTER_PATIENCE,
            "every cluster node to agree on a full slot map",
            || async move {
                let reference = self.slots().await?;
                let covered: u32 = reference
                    .iter()
                    .map(|r| u32::from(r.end - r.start) + 1)
                    .sum();
                if covered != u32::from(SLOTS) {
                    bail!("{covered} slots covered: {reference:?}");
                }
                if reference.iter().any(|r| r.replicas.len() != self.replicas) {
                    bail!(
                        "not every range has {} replicas yet: {reference:?}",
                        self.replicas
                    );
                }
                for addr in self.addrs() {
                    let info = self.info(addr).await?;
                    if !info.contains("cluster_state:ok") {
                        bail!("{addr} says {info}");
                    }
                    let slots = self.slots_from(addr).await?;
                    if slots != reference {
                        bail!("{addr} sees {slots:?}, the first node {reference:?}");
                    }
                }
                Ok(())
            },
        )
        .await;
    }

    /// Moves `slot` with its keys to the master `to`, then waits until every node agrees.
    pub async fn migrate_slot(&self, slot: u16, to: SocketAddr) -> anyhow::Result<()> {
        let migration = self.begin_migration(slot, to).await?;
        while migration.move_keys(100).await? > 0 {}
        migration.finish(self).await
    }

    /// Marks `slot` IMPORTING on `to` and MIGRATING on its owner, and returns the migration
    /// half done: from now on the owner answers `-ASK` for keys of the slot it no longer has.
    pub async fn begin_migration(&self, slot: u16, to: SocketAddr) -> anyhow::Result<Migration> {
        let from = self.owner(slot).await?;
        if from == to {
            bail!("slot {slot} is already on {to}");
        }
        let migration = Migration {
            slot,
            from,
            to,
            from_id: self.node_id(from).await?,
            to_id: self.node_id(to).await?,
            password: self.password.clone(),
        };
        let slot = slot.to_string();
        expect_ok(
            self.connect(to)
                .await?
                .command(&["CLUSTER", "SETSLOT", &slot, "IMPORTING", &migration.from_id])
                .await?,
        )?;
        expect_ok(
            self.connect(from)
                .await?
                .command(&["CLUSTER", "SETSLOT", &slot, "MIGRATING", &migration.to_id])
                .await?,
        )?;
        Ok(migration)
    }

    async fn node_id(&self, addr: SocketAddr) -> anyhow::Result<String> {
        let reply = self
            .connect(addr)
            .await?
            .command(&["CLUSTER", "MYID"])
            .await?;
        reply
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("CLUSTER MYID at {addr} answered {reply:?}"))
    }
}

/// A slot migration in progress (see [`RedisCluster::begin_migration`]).
#[derive(Debug, Clone)]
pub struct Migration {
    /// The slot being moved.
    pub slot: u16,
    /// Its owner so far.
    pub from: SocketAddr,
    /// Its new owner.
    pub to: SocketAddr,
    from_id: String,
    to_id: String,
    password: Option<String>,
}

impl Migration {
    /// Moves up to `max` keys of the slot with `MIGRATE`; returns how many it moved.
    pub async fn move_keys(&self, max: usize) -> anyhow::Result<usize> {
        let mut from = RespConn::connect_auth(self.from, None, self.password.as_deref()).await?;
        let slot = self.slot.to_string();
        let count = max.to_string();
        let reply = from
            .command(&["CLUSTER", "GETKEYSINSLOT", &slot, &count])
            .await?;
        let keys: Vec<String> = reply
            .as_array()
            .with_context(|| format!("GETKEYSINSLOT answered {reply:?}"))?
            .iter()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect();
        if keys.is_empty() {
            return Ok(0);
        }
        let (ip, port) = (self.to.ip().to_string(), self.to.port().to_string());
        let mut args = vec!["MIGRATE", &ip, &port, "", "0", MIGRATE_TIMEOUT_MS];
        if let Some(password) = &self.password {
            args.extend(["AUTH", password.as_str()]);
        }
        args.push("KEYS");
        args.extend(keys.iter().map(String::as_str));
        expect_ok(from.command(&args).await?)?;
        Ok(keys.len())
    }

    /// Assigns the slot to its new owner on every node (the new owner first, so it bumps
    /// its epoch), then waits until all of them report the new slot map.
    pub async fn finish(&self, cluster: &RedisCluster) -> anyhow::Result<()> {
        let slot = self.slot.to_string();
        // Masters only: replicas refuse SETSLOT and follow their master.
        let mut order = vec![self.to, self.from];
        order.extend(
            cluster
                .masters()
                .await?
                .into_iter()
                .filter(|a| *a != self.to && *a != self.from),
        );
        for addr in order {
            let reply = cluster
                .connect(addr)
                .await?
                .command(&["CLUSTER", "SETSLOT", &slot, "NODE", &self.to_id])
                .await?;
            expect_ok(reply).with_context(|| format!("CLUSTER SETSLOT {slot} NODE at {addr}"))?;
        }
        let to = self.to;
        let target = self.slot;
        eventually(
            CLUSTER_PATIENCE,
            &format!("every node to see slot {slot} on {to}"),
            || async move {
                for addr in cluster.addrs() {
                    let owner = owner_in(&cluster.slots_from(addr).await?, target)?;
                    if owner != to {
                        bail!("{addr} still sees slot {target} on {owner}");
                    }
                }
                Ok(())
            },
        )
        .await;
        Ok(())
    }
}

fn expect_ok(reply: Resp) -> anyhow::Result<()> {
    match reply.as_str() {
        Some("OK" | "NOKEY") => Ok(()),
        _ => bail!("expected OK, got {reply:?}"),
    }
}
