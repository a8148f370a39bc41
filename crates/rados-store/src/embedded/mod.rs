//! The embedded, in-process cluster: the default backend for the demo, tests and simulation.
//!
//! It behaves like one OSD plus one monitor with a perfect network: pools and namespaces,
//! atomic op vectors, object classes, watch/notify with timeouts, client death with the OSD's
//! watch timeout, a blocklist with expiry, and self-managed snapshots with copy-on-write clones.
//! All time goes through the cluster's [`Clock`], so a [`crate::SimClock`] makes every run
//! reproducible. Operations on one object are serialised by a per-object lock and applied in
//! the order they are issued; different objects proceed in parallel.
//!
//! Administrative powers a real cluster gives to operators or to chaos (kill a client, list the
//! blocklist, register an extra object class) are methods of [`Cluster`], not of the client API.

mod hub;
mod object;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use tokio::sync::Notify;

use crate::backend::{ClientBackend, ObjectLocator, PoolId};
use crate::clock::{Clock, SystemClock};
use crate::cls::{ClassRegistry, ClsMethod};
use crate::error::{Error, Result, errno};
use crate::ioctx::Client;
use crate::names;
use crate::ops::{ReadOp, ReadResult, WriteOp};
use crate::snap::{SnapContext, SnapId, SnapSetInfo};
use crate::types::{EntityAddr, EntityName, Gid, UTime};
use crate::watch::{NotifyError, NotifyEvent, NotifyReply, WatchCtx, WatcherInfo};

use hub::{ClientShared, Delivery, HeldWatches, NotifyPoll, ObjKey, WatchHub, WatchRecord};
use object::{OpEnv, Slot};

/// Tunables of the embedded cluster. Defaults are Ceph 16.2's.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// How long a dead client's watches stay listed (`osd_client_watch_timeout`, 30 s). Until
    /// then its lock cannot be judged dead (rbd §1.6.3, §1.7).
    pub watch_timeout: Duration,
    /// Blocklist duration when none is given (`mon_osd_blocklist_default_expire`, 1 h).
    pub blocklist_default_expire: Duration,
    /// Notify timeout when a caller passes zero (`client_notify_timeout`, 10 s).
    pub default_notify_timeout: Duration,
    /// Largest object (`osd_max_object_size`, 128 MiB); larger extents fail with -EFBIG.
    pub max_object_size: u64,
    /// The first gid handed out; real clusters start in the low thousands (`client.4176`).
    pub first_gid: Gid,
    /// Clients' IP address.
    pub client_ip: IpAddr,
    /// Clients' port. Real librados clients show port 0 (real-ceph §3: `127.0.0.1:0/3895977888`).
    pub client_port: u16,
    /// Seed for address nonces, so a simulation run reproduces the same addresses.
    pub seed: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            watch_timeout: Duration::from_secs(30),
            blocklist_default_expire: Duration::from_secs(3600),
            default_notify_timeout: Duration::from_secs(10),
            max_object_size: 128 << 20,
            first_gid: 4100,
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            client_port: 0,
            seed: 0,
        }
    }
}

/// Watch handles start high so that code truncating them to 32 bits fails loudly in tests
/// (real handles are pointer values such as 139789844098304).
const FIRST_WATCH_COOKIE: u64 = 0x7f00_0000_0000;

/// `ENOTCONN`: the operation came from a client that no longer exists.
fn enotconn(gid: Gid) -> Error {
    Error::Os { errno: errno::ENOTCONN, context: format!("client.{gid} is shut down") }
}

struct PoolSnaps {
    seq: SnapId,
    /// Live snap ids; replaced wholesale on change so ops can hold a cheap snapshot of it.
    live: Arc<BTreeSet<SnapId>>,
}

struct Pool {
    id: PoolId,
    name: String,
    /// Objects keyed by `namespace \0 name` (NUL cannot occur in either).
    objects: DashMap<String, Arc<Mutex<Slot>>>,
    snaps: Mutex<PoolSnaps>,
}

fn slot_key(ns: &str, oid: &str) -> String {
    let mut k = String::with_capacity(ns.len() + oid.len() + 1);
    k.push_str(ns);
    k.push('\0');
    k.push_str(oid);
    k
}

fn lock_slot(slot: &Mutex<Slot>) -> std::sync::MutexGuard<'_, Slot> {
    // Ops validate before they mutate, so a panic inside one cannot leave a half-applied slot.
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pool {
    fn live_snaps(&self) -> Arc<BTreeSet<SnapId>> {
        self.snaps.lock().unwrap_or_else(|e| e.into_inner()).live.clone()
    }

    fn slot(&self, key: &str) -> Option<Arc<Mutex<Slot>>> {
        self.objects.get(key).map(|r| r.value().clone())
    }

    fn slot_or_create(&self, key: &str) -> Arc<Mutex<Slot>> {
        if let Some(s) = self.slot(key) {
            return s;
        }
        self.objects.entry(key.to_owned()).or_default().value().clone()
    }

    /// Drops a slot that holds nothing any more. The caller must not hold the slot's lock, nor
    /// a reference to it.
    fn gc(&self, key: &str) {
        self.objects.remove_if(key, |_, v| {
            Arc::strong_count(v) == 1 && v.try_lock().map(|s| s.is_empty()).unwrap_or(false)
        });
    }

    /// All slots, collected first so no map lock is held while slots are locked.
    fn all_slots(&self) -> Vec<(String, Arc<Mutex<Slot>>)> {
        self.objects.iter().map(|r| (r.key().clone(), r.value().clone())).collect()
    }
}

#[derive(Default)]
struct Pools {
    by_id: BTreeMap<PoolId, Arc<Pool>>,
    by_name: HashMap<String, PoolId>,
    next_id: PoolId,
}

struct Inner {
    config: ClusterConfig,
    clock: Arc<dyn Clock>,
    registry: RwLock<ClassRegistry>,
    pools: RwLock<Pools>,
    clients: Mutex<HashMap<Gid, Arc<ClientShared>>>,
    used_nonces: Mutex<HashSet<u32>>,
    /// Address → expiry. Entries are stored with the legacy address type; matching ignores it.
    blocklist: Mutex<BTreeMap<EntityAddr, UTime>>,
    hub: Mutex<WatchHub>,
    next_gid: AtomicU64,
    next_cookie: AtomicU64,
    next_notify: AtomicU64,
    /// Notifies accepted so far: what benchmarks report as messages per operation.
    notifies_sent: AtomicU64,
}

/// splitmix64: a tiny, well-mixed hash for deterministic nonces.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Inner {
    /// Runs `f` under the hub's lock. Watches removed meanwhile are dropped after the lock is
    /// released (see `WatchHub::take_graveyard`).
    fn with_hub<R>(&self, f: impl FnOnce(&mut WatchHub) -> R) -> R {
        let (r, removed) = {
            let mut hub = self.hub.lock().unwrap_or_else(|e| e.into_inner());
            let r = f(&mut hub);
            (r, hub.take_graveyard())
        };
        drop(removed);
        r
    }

    fn pool(&self, id: PoolId) -> Result<Arc<Pool>> {
        let pools = self.pools.read().unwrap_or_else(|e| e.into_inner());
        pools.by_id.get(&id).cloned().ok_or_else(|| Error::NotFound(format!("pool {id} does not exist")))
    }

    fn pool_lookup(&self, name: &str) -> Result<PoolId> {
        let pools = self.pools.read().unwrap_or_else(|e| e.into_inner());
        pools
            .by_name
            .get(name)
            .copied()
            .ok_or_else(|| Error::NotFound(format!("pool {name:?} does not exist")))
    }

    fn create_pool(&self, name: &str) -> Result<PoolId> {
        names::validate_pool_name(name)?;
        let mut pools = self.pools.write().unwrap_or_else(|e| e.into_inner());
        if pools.by_name.contains_key(name) {
            return Err(Error::Exists(format!("pool {name:?} exists")));
        }
        pools.next_id += 1;
        let id = pools.next_id;
        let pool = Pool {
            id,
            name: name.to_owned(),
            objects: DashMap::new(),
            snaps: Mutex::new(PoolSnaps { seq: 0, live: Arc::new(BTreeSet::new()) }),
        };
        pools.by_id.insert(id, Arc::new(pool));
        pools.by_name.insert(name.to_owned(), id);
        tracing::debug!(pool = name, id, "pool created");
        Ok(id)
    }

    fn new_addr(&self, gid: Gid) -> EntityAddr {
        let mut used = self.used_nonces.lock().unwrap_or_else(|e| e.into_inner());
        let mut n = mix(self.config.seed ^ mix(gid)) as u32;
        while n == 0 || !used.insert(n) {
            n = n.wrapping_add(1);
        }
        EntityAddr::legacy(SocketAddr::new(self.config.client_ip, self.config.client_port), n)
    }

    fn connect(self: &Arc<Self>) -> Arc<ClientShared> {
        let gid = self.next_gid.fetch_add(1, Ordering::Relaxed);
        let addr = self.new_addr(gid);
        let shared = Arc::new(ClientShared::new(gid, addr));
        self.clients.lock().unwrap_or_else(|e| e.into_inner()).insert(gid, shared.clone());
        tracing::debug!(gid, %addr, "client connected");
        shared
    }

    /// Ceph's `OSDMap::is_blocklisted`: the exact address, or the whole IP (an entry with port
    /// and nonce 0), and only while the entry has not expired.
    fn is_blocklisted(&self, addr: &EntityAddr) -> bool {
        let bl = self.blocklist.lock().unwrap_or_else(|e| e.into_inner());
        if bl.is_empty() {
            return false;
        }
        let now = self.clock.now();
        let exact = addr.as_legacy();
        let whole_ip = EntityAddr::legacy(SocketAddr::new(addr.addr.ip(), 0), 0);
        [exact, whole_ip].iter().any(|k| bl.get(k).is_some_and(|exp| now < *exp))
    }

    fn blocklist_add(&self, addr: &EntityAddr, expire: Duration) -> UTime {
        let now = self.clock.now();
        let expire = if expire.is_zero() { self.config.blocklist_default_expire } else { expire };
        let until = now.saturating_add(expire);
        self.blocklist.lock().unwrap_or_else(|e| e.into_inner()).insert(addr.as_legacy(), until);
        tracing::debug!(%addr, %until, "blocklisted");
        // The OSD drops the watches of newly blocklisted clients and tells them.
        let victims: Vec<Arc<ClientShared>> = {
            let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
            clients.values().filter(|c| self.is_blocklisted(&c.addr)).cloned().collect()
        };
        let deliveries = self.with_hub(|hub| {
            let mut deliveries = Vec::new();
            for c in &victims {
                for cookie in hub.cookies_of(c.gid) {
                    if let Some((client, ctx)) = hub.remove_watch(cookie, now) {
                        tracing::debug!(gid = c.gid, cookie, "watch broken by blocklist");
                        deliveries.push((client, ctx, cookie));
                    }
                }
            }
            deliveries
        });
        // Real 16.2 reports a watch dropped this way as -ENOTCONN (the session is gone), not as
        // -EBLOCKLISTED; only later calls on the client's other operations get 108.
        for (client, ctx, cookie) in deliveries {
            let error =
                Error::Os { errno: errno::ENOTCONN, context: format!("watch {cookie} lost: blocklisted") };
            client.deliver(Delivery::Error(ctx, cookie, error));
        }
        until
    }

    fn kill_client(&self, gid: Gid) -> Result<()> {
        let client = self.client(gid)?;
        let now = self.clock.now();
        if client.kill(now) {
            tracing::debug!(gid, %now, "client killed");
            // In-flight notifies now know when this client's watches will expire.
            self.with_hub(|hub| hub.wake_all());
        }
        Ok(())
    }

    fn client(&self, gid: Gid) -> Result<Arc<ClientShared>> {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&gid)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("no client.{gid}")))
    }

    fn suspend_client(&self, gid: Gid) -> Result<()> {
        let client = self.client(gid)?;
        let now = self.clock.now();
        let watches = self.with_hub(|hub| {
            hub.cookies_of(gid).into_iter().filter_map(|c| hub.get(c).map(|w| (c, w.ctx.clone()))).collect()
        });
        if client.suspend(now, watches) {
            tracing::debug!(gid, %now, "client suspended");
            self.with_hub(|hub| hub.wake_all());
        }
        Ok(())
    }

    fn resume_client(&self, gid: Gid) -> Result<()> {
        let client = self.client(gid)?;
        let Some(watches) = client.resume() else {
            return Err(Error::InvalidArgument(format!("client.{gid} is not suspended")));
        };
        let now = self.clock.now();
        let timeout = self.config.watch_timeout;
        // Watches that timed out while it was silent are gone; it learns so as librados does
        // when its next ping fails: an error callback with -ENOTCONN for each.
        let lost: HeldWatches = self.with_hub(|hub| {
            hub.purge_expired(now, timeout);
            watches.into_iter().filter(|(c, _)| hub.get(*c).is_none()).collect()
        });
        tracing::debug!(gid, %now, lost = lost.len(), "client resumed");
        for (cookie, ctx) in lost {
            let error =
                Error::Os { errno: errno::ENOTCONN, context: format!("watch {cookie} lost while suspended") };
            client.deliver(Delivery::Error(ctx, cookie, error));
        }
        Ok(())
    }

    fn env<'a>(&'a self, client: &ClientShared, oid: &'a str, live: &'a BTreeSet<SnapId>) -> OpEnv<'a> {
        OpEnv {
            now: self.clock.now(),
            max_object_size: self.config.max_object_size,
            registry: &self.registry,
            caller: EntityName::client(client.gid),
            addr: client.addr,
            oid,
            live_snaps: live,
        }
    }

    /// Checks a read snap id: it must be a live snapshot of the pool.
    fn check_read_snap(pool: &Pool, snap: Option<SnapId>, live: &BTreeSet<SnapId>) -> Result<()> {
        match snap {
            Some(s) if !live.contains(&s) => {
                Err(Error::NotFound(format!("snap {s} does not exist in pool {:?}", pool.name)))
            }
            _ => Ok(()),
        }
    }

    fn object_exists(&self, loc: &ObjectLocator<'_>) -> Result<bool> {
        let pool = self.pool(loc.pool)?;
        let key = slot_key(loc.namespace, loc.oid);
        Ok(pool.slot(&key).is_some_and(|s| lock_slot(&s).head.is_some()))
    }
}

/// An embedded cluster. Cheap to clone; clones are the same cluster.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("config", &self.inner.config)
            .field("clock", &self.inner.clock)
            .finish()
    }
}

impl Default for Cluster {
    fn default() -> Self {
        Self::new(ClusterConfig::default())
    }
}

impl Cluster {
    /// A cluster on the system clock, hosting the built-in classes (`lock`).
    pub fn new(config: ClusterConfig) -> Self {
        Self::with_clock(Arc::new(SystemClock), config)
    }

    /// A cluster on a given clock (a [`crate::SimClock`] for deterministic runs).
    pub fn with_clock(clock: Arc<dyn Clock>, config: ClusterConfig) -> Self {
        let first_gid = config.first_gid.max(1);
        Cluster {
            inner: Arc::new(Inner {
                config,
                clock,
                registry: RwLock::new(ClassRegistry::with_builtin_classes()),
                pools: RwLock::new(Pools::default()),
                clients: Mutex::new(HashMap::new()),
                used_nonces: Mutex::new(HashSet::new()),
                blocklist: Mutex::new(BTreeMap::new()),
                hub: Mutex::new(WatchHub::default()),
                next_gid: AtomicU64::new(first_gid),
                next_cookie: AtomicU64::new(FIRST_WATCH_COOKIE),
                next_notify: AtomicU64::new(1),
                notifies_sent: AtomicU64::new(0),
            }),
        }
    }

    /// The cluster's clock.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &ClusterConfig {
        &self.inner.config
    }

    /// A new client connection with a fresh gid and address.
    ///
    /// Dropping every handle of a client (the [`Client`] and all its I/O contexts) is like its
    /// process exiting without unwatching: its watches linger for the watch timeout.
    pub fn connect(&self) -> Client {
        let shared = self.inner.connect();
        Client::from_backend(Arc::new(EmbeddedClient { inner: self.inner.clone(), shared }))
    }

    /// Creates a pool; -EEXIST if the name is taken.
    pub fn create_pool(&self, name: &str) -> Result<PoolId> {
        self.inner.create_pool(name)
    }

    /// The id of a pool; -ENOENT if there is none.
    pub fn pool_id(&self, name: &str) -> Result<PoolId> {
        self.inner.pool_lookup(name)
    }

    /// Loads an extra object-class method (tests use this for their own classes).
    pub fn register_cls_method(&self, class: &str, method: &str, flags: u32, func: ClsMethod) {
        self.inner.registry.write().unwrap_or_else(|e| e.into_inner()).register(class, method, flags, func);
    }

    /// Simulates a client crash: its operations fail from now on, no more callbacks reach it,
    /// its pending acks never come, its watches stay listed until the watch timeout passes on
    /// the cluster clock, and its locks stay until broken. -ENOENT for an unknown gid.
    pub fn kill_client(&self, gid: Gid) -> Result<()> {
        self.inner.kill_client(gid)
    }

    /// Simulates a client that hangs (a paused VM, a network partition) rather than dies: while
    /// it lasts no callbacks reach it, its watches expire one watch timeout later as a dead
    /// client's do, and the operations it issues wait (a stopped process sends nothing; librados
    /// resends a stalled op rather than failing it). [`Cluster::resume_client`] lets them go on.
    /// -ENOENT for an unknown gid.
    pub fn suspend_client(&self, gid: Gid) -> Result<()> {
        self.inner.suspend_client(gid)
    }

    /// Wakes a suspended client. Its waiting and later operations reach the cluster, so if it
    /// was blocklisted meanwhile they fail with -EBLOCKLISTED; each of its watches that expired
    /// while it hung gets an error callback (-ENOTCONN). -EINVAL if it was not suspended.
    pub fn resume_client(&self, gid: Gid) -> Result<()> {
        self.inner.resume_client(gid)
    }

    /// How many notifies the cluster has accepted from all clients so far. Lets a benchmark or
    /// test count the messages an operation costs (each notify reaches every watcher once).
    pub fn notify_count(&self) -> u64 {
        self.inner.notifies_sent.load(Ordering::Relaxed)
    }

    /// Whether a client is alive (connected and not killed).
    pub fn is_client_alive(&self, gid: Gid) -> bool {
        self.inner.clients.lock().unwrap_or_else(|e| e.into_inner()).get(&gid).is_some_and(|c| !c.is_dead())
    }

    /// The address of a client, dead or alive.
    pub fn client_addr(&self, gid: Gid) -> Option<EntityAddr> {
        self.inner.clients.lock().unwrap_or_else(|e| e.into_inner()).get(&gid).map(|c| c.addr)
    }

    /// Blocklists an address (`ceph osd blocklist add`) for `expire` (zero = the default, one
    /// hour). Its watches break at once (with an error callback); every later op fails with
    /// -EBLOCKLISTED until the entry expires or is removed. Returns the expiry time.
    pub fn blocklist_add(&self, addr: &EntityAddr, expire: Duration) -> UTime {
        self.inner.blocklist_add(addr, expire)
    }

    /// Removes a blocklist entry; returns whether there was one.
    pub fn blocklist_remove(&self, addr: &EntityAddr) -> bool {
        let removed =
            self.inner.blocklist.lock().unwrap_or_else(|e| e.into_inner()).remove(&addr.as_legacy());
        tracing::debug!(%addr, removed = removed.is_some(), "blocklist entry removed");
        removed.is_some()
    }

    /// Unexpired blocklist entries (address, expiry), sorted by address. Expired entries are
    /// dropped, as the monitor does.
    pub fn blocklist_list(&self) -> Vec<(EntityAddr, UTime)> {
        let now = self.inner.clock.now();
        let mut bl = self.inner.blocklist.lock().unwrap_or_else(|e| e.into_inner());
        bl.retain(|_, exp| now < *exp);
        bl.iter().map(|(a, e)| (*a, *e)).collect()
    }

    /// Whether an address is currently blocklisted.
    pub fn is_blocklisted(&self, addr: &EntityAddr) -> bool {
        self.inner.is_blocklisted(addr)
    }
}

/// One client's connection to an embedded cluster.
struct EmbeddedClient {
    inner: Arc<Inner>,
    shared: Arc<ClientShared>,
}

impl fmt::Debug for EmbeddedClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedClient")
            .field("gid", &self.shared.gid)
            .field("addr", &self.shared.addr)
            .finish()
    }
}

impl Drop for EmbeddedClient {
    fn drop(&mut self) {
        // The last handle is gone: the process "exited" without unwatching.
        if self.shared.kill(self.inner.clock.now()) {
            tracing::debug!(gid = self.shared.gid, "client dropped");
            self.inner.with_hub(|hub| hub.wake_all());
        }
    }
}

impl EmbeddedClient {
    /// Every op starts here. A hung (suspended) client's op waits until it is resumed: a
    /// stopped process sends nothing, and librados resends rather than fails a stalled op, so
    /// the op reaches the cluster late, where a blocklist added meanwhile refuses it. Then the
    /// usual checks apply.
    async fn gate(&self) -> Result<()> {
        loop {
            let resumed = self.shared.resumed.notified();
            tokio::pin!(resumed);
            // Register before looking, so a resume in between is not missed.
            resumed.as_mut().enable();
            if !self.shared.is_suspended() {
                break;
            }
            resumed.await;
        }
        self.check()
    }

    /// A dead client cannot act, a blocklisted one is refused.
    fn check(&self) -> Result<()> {
        if self.shared.is_dead() {
            return Err(enotconn(self.shared.gid));
        }
        if self.inner.is_blocklisted(&self.shared.addr) {
            tracing::debug!(gid = self.shared.gid, "op refused: blocklisted");
            return Err(Error::Blocklisted);
        }
        Ok(())
    }

    fn obj_key(loc: &ObjectLocator<'_>) -> ObjKey {
        (loc.pool, loc.namespace.to_owned(), loc.oid.to_owned())
    }

    fn check_loc(loc: &ObjectLocator<'_>) -> Result<()> {
        names::validate_namespace(loc.namespace)?;
        names::validate_object_name(loc.oid)
    }

    fn require_object(&self, loc: &ObjectLocator<'_>) -> Result<()> {
        if self.inner.object_exists(loc)? {
            Ok(())
        } else {
            Err(Error::NotFound(format!("object {:?} does not exist", loc.oid)))
        }
    }
}

/// Removes an abandoned notify from the hub if the notifier's future is dropped mid-wait.
struct NotifyGuard<'a> {
    inner: &'a Inner,
    id: u64,
    armed: bool,
}

impl Drop for NotifyGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.inner.with_hub(|hub| hub.cancel_notify(self.id));
        }
    }
}

#[async_trait]
impl ClientBackend for EmbeddedClient {
    fn gid(&self) -> Gid {
        self.shared.gid
    }

    fn addr(&self) -> EntityAddr {
        self.shared.addr
    }

    fn now(&self) -> UTime {
        self.inner.clock.now()
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }

    fn pool_lookup(&self, name: &str) -> Result<PoolId> {
        self.inner.pool_lookup(name)
    }

    async fn pool_create(&self, name: &str) -> Result<PoolId> {
        self.gate().await?;
        self.inner.create_pool(name)
    }

    async fn operate_write(&self, loc: ObjectLocator<'_>, snapc: &SnapContext, op: &WriteOp) -> Result<()> {
        self.gate().await?;
        Self::check_loc(&loc)?;
        if !snapc.is_valid() {
            return Err(Error::InvalidArgument(format!("invalid snap context {snapc:?}")));
        }
        let pool = self.inner.pool(loc.pool)?;
        let live = pool.live_snaps();
        let key = slot_key(loc.namespace, loc.oid);
        let slot = pool.slot_or_create(&key);
        let env = self.inner.env(&self.shared, loc.oid, &live);
        let res = {
            let mut s = lock_slot(&slot);
            object::apply_write_ops(&mut s, op.ops(), snapc, &env)
        };
        tracing::debug!(gid = self.shared.gid, pool = loc.pool, ns = loc.namespace, oid = loc.oid,
            ops = op.len(), result = ?res.as_ref().err().map(Error::errno), "write op");
        drop(slot);
        pool.gc(&key);
        res
    }

    async fn operate_read(
        &self,
        loc: ObjectLocator<'_>,
        snap: Option<SnapId>,
        op: &ReadOp,
    ) -> Result<Vec<ReadResult>> {
        self.gate().await?;
        Self::check_loc(&loc)?;
        let pool = self.inner.pool(loc.pool)?;
        let live = pool.live_snaps();
        Inner::check_read_snap(&pool, snap, &live)?;
        let env = self.inner.env(&self.shared, loc.oid, &live);
        let enoent = || Error::NotFound(format!("object {:?} does not exist", loc.oid));
        let slot = pool.slot(&slot_key(loc.namespace, loc.oid)).ok_or_else(enoent)?;
        let res = {
            let s = lock_slot(&slot);
            // A read op on a missing object fails before any sub-op runs, as on an OSD.
            match s.object_at(snap) {
                None => Err(enoent()),
                Some(obj) => op.ops().iter().map(|o| object::apply_read(obj, o, &env)).collect(),
            }
        };
        tracing::debug!(gid = self.shared.gid, pool = loc.pool, ns = loc.namespace, oid = loc.oid, ?snap,
            ops = op.len(), result = ?res.as_ref().err().map(Error::errno), "read op");
        res
    }

    async fn exec(
        &self,
        loc: ObjectLocator<'_>,
        snapc: &SnapContext,
        snap: Option<SnapId>,
        class: &str,
        method: &str,
        input: &[u8],
    ) -> Result<Vec<u8>> {
        self.gate().await?;
        Self::check_loc(&loc)?;
        let entry = self.inner.registry.read().unwrap_or_else(|e| e.into_inner()).lookup(class, method)?;
        let pool = self.inner.pool(loc.pool)?;
        let live = pool.live_snaps();
        let env = self.inner.env(&self.shared, loc.oid, &live);
        let key = slot_key(loc.namespace, loc.oid);
        let res = if entry.is_write() {
            if let Some(s) = snap {
                return Err(Error::Os {
                    errno: errno::EROFS,
                    context: format!("exec of {class}.{method} at snap {s}"),
                });
            }
            if !snapc.is_valid() {
                return Err(Error::InvalidArgument(format!("invalid snap context {snapc:?}")));
            }
            let slot = pool.slot_or_create(&key);
            let res = object::exec_write(&mut lock_slot(&slot), entry.func, input, snapc, &env);
            drop(slot);
            pool.gc(&key);
            res
        } else {
            Inner::check_read_snap(&pool, snap, &live)?;
            let enoent = || Error::NotFound(format!("object {:?} does not exist", loc.oid));
            let slot = pool.slot(&key).ok_or_else(enoent)?;
            let s = lock_slot(&slot);
            match s.object_at(snap) {
                None => Err(enoent()),
                Some(obj) => object::exec_read(obj, entry.func, input, &env),
            }
        };
        tracing::debug!(gid = self.shared.gid, pool = loc.pool, oid = loc.oid, class, method,
            result = ?res.as_ref().err().map(Error::errno), "exec");
        res
    }

    async fn list_objects(&self, pool: PoolId, namespace: Option<&str>) -> Result<Vec<(String, String)>> {
        self.gate().await?;
        let pool = self.inner.pool(pool)?;
        let mut out = Vec::new();
        for (key, slot) in pool.all_slots() {
            let Some((ns, oid)) = key.split_once('\0') else { continue };
            if namespace.is_some_and(|want| want != ns) {
                continue;
            }
            if lock_slot(&slot).head.is_some() {
                out.push((ns.to_owned(), oid.to_owned()));
            }
        }
        out.sort();
        Ok(out)
    }

    async fn watch(&self, loc: ObjectLocator<'_>, ctx: Arc<dyn WatchCtx>) -> Result<u64> {
        self.gate().await?;
        Self::check_loc(&loc)?;
        self.require_object(&loc)?;
        let cookie = self.inner.next_cookie.fetch_add(1, Ordering::Relaxed);
        let rec = WatchRecord { obj: Self::obj_key(&loc), client: self.shared.clone(), ctx };
        self.inner.with_hub(|hub| hub.add_watch(cookie, rec));
        tracing::debug!(gid = self.shared.gid, oid = loc.oid, cookie, "watch registered");
        Ok(cookie)
    }

    async fn unwatch(&self, handle: u64) -> Result<()> {
        if self.shared.is_dead() {
            return Err(enotconn(self.shared.gid));
        }
        let now = self.inner.clock.now();
        let removed = self.inner.with_hub(|hub| {
            hub.purge_expired(now, self.inner.config.watch_timeout);
            match hub.get(handle) {
                Some(w) if w.client.gid == self.shared.gid => hub.remove_watch(handle, now).is_some(),
                _ => false,
            }
        });
        if removed {
            tracing::debug!(gid = self.shared.gid, cookie = handle, "unwatched");
            return Ok(());
        }
        self.gate().await?;
        Err(Error::NotFound(format!("client.{} has no watch {handle}", self.shared.gid)))
    }

    async fn watch_check(&self, handle: u64) -> Result<()> {
        // A blocklisted client's watches are gone; librados answers watch_check with -ENOTCONN
        // then, as for any lost watch (seen on a real 16.2 cluster), not with -EBLOCKLISTED.
        match self.gate().await {
            Err(Error::Blocklisted) => {
                return Err(Error::Os {
                    errno: errno::ENOTCONN,
                    context: format!("watch {handle} lost: blocklisted"),
                });
            }
            other => other?,
        }
        let registered = self.inner.with_hub(|hub| {
            hub.purge_expired(self.inner.clock.now(), self.inner.config.watch_timeout);
            hub.get(handle).is_some_and(|w| w.client.gid == self.shared.gid)
        });
        if registered {
            Ok(())
        } else {
            Err(Error::Os { errno: errno::ENOTCONN, context: format!("watch {handle} is not registered") })
        }
    }

    async fn notify(
        &self,
        loc: ObjectLocator<'_>,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<NotifyReply, NotifyError> {
        self.gate().await?;
        Self::check_loc(&loc)?;
        self.require_object(&loc)?;
        self.inner.notifies_sent.fetch_add(1, Ordering::Relaxed);
        let timeout = if timeout.is_zero() { self.inner.config.default_notify_timeout } else { timeout };
        let watch_timeout = self.inner.config.watch_timeout;
        let clock = self.inner.clock.clone();
        let now = clock.now();
        let deadline = now.saturating_add(timeout);
        let id = self.inner.next_notify.fetch_add(1, Ordering::Relaxed);
        let wake = Arc::new(Notify::new());
        let obj = Self::obj_key(&loc);
        let deliveries = self.inner.with_hub(|hub| {
            hub.purge_expired(now, watch_timeout);
            hub.start_notify(id, &obj, deadline, wake.clone())
        });
        let mut guard = NotifyGuard { inner: &self.inner, id, armed: true };
        tracing::debug!(gid = self.shared.gid, oid = loc.oid, notify_id = id, watchers = deliveries.len(),
            %deadline, "notify sent");
        let payload = bytes::Bytes::copy_from_slice(payload);
        for (client, ctx, cookie) in deliveries {
            let ev = NotifyEvent {
                notify_id: id,
                handle: cookie,
                notifier_gid: self.shared.gid,
                payload: payload.clone(),
            };
            client.deliver(Delivery::Notify(ctx, ev));
        }
        loop {
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let poll = self.inner.with_hub(|hub| hub.poll_notify(id, clock.now(), watch_timeout));
            match poll {
                NotifyPoll::Done(reply) => {
                    guard.armed = false;
                    tracing::debug!(
                        notify_id = id,
                        acks = reply.acks.len(),
                        timeouts = reply.timeouts.len(),
                        "notify complete"
                    );
                    return if reply.timeouts.is_empty() {
                        Ok(reply)
                    } else {
                        Err(NotifyError::TimedOut(reply))
                    };
                }
                NotifyPoll::WaitUntil(t) => {
                    let sleep = clock.sleep_until(t);
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = sleep => {}
                    }
                }
            }
        }
    }

    async fn notify_ack(
        &self,
        loc: ObjectLocator<'_>,
        notify_id: u64,
        handle: u64,
        reply: &[u8],
    ) -> Result<()> {
        self.gate().await?;
        Self::check_loc(&loc)?;
        let now = self.inner.clock.now();
        let obj = Self::obj_key(&loc);
        let counted =
            self.inner.with_hub(|hub| hub.ack(notify_id, &obj, handle, self.shared.gid, reply, now));
        tracing::debug!(gid = self.shared.gid, notify_id, cookie = handle, counted, "notify ack");
        Ok(())
    }

    async fn list_watchers(&self, loc: ObjectLocator<'_>) -> Result<Vec<WatcherInfo>> {
        self.gate().await?;
        Self::check_loc(&loc)?;
        self.require_object(&loc)?;
        let obj = Self::obj_key(&loc);
        Ok(self.inner.with_hub(|hub| {
            hub.purge_expired(self.inner.clock.now(), self.inner.config.watch_timeout);
            hub.list_watchers(&obj)
        }))
    }

    async fn selfmanaged_snap_create(&self, pool: PoolId) -> Result<SnapId> {
        self.gate().await?;
        let pool = self.inner.pool(pool)?;
        let mut snaps = pool.snaps.lock().unwrap_or_else(|e| e.into_inner());
        snaps.seq += 1;
        let id = snaps.seq;
        let mut live = (*snaps.live).clone();
        live.insert(id);
        snaps.live = Arc::new(live);
        tracing::debug!(pool = pool.id, snap = id, "selfmanaged snap created");
        Ok(id)
    }

    async fn selfmanaged_snap_remove(&self, pool: PoolId, snap: SnapId) -> Result<()> {
        self.gate().await?;
        let pool = self.inner.pool(pool)?;
        {
            let mut snaps = pool.snaps.lock().unwrap_or_else(|e| e.into_inner());
            if !snaps.live.contains(&snap) {
                return Err(Error::NotFound(format!("snap {snap} does not exist in pool {:?}", pool.name)));
            }
            let mut live = (*snaps.live).clone();
            live.remove(&snap);
            snaps.live = Arc::new(live);
        }
        // Trim: clones that served only this snap go.
        let slots = pool.all_slots();
        let mut emptied = Vec::new();
        for (key, slot) in &slots {
            let mut s = lock_slot(slot);
            s.trim_snap(snap);
            if s.is_empty() {
                emptied.push(key.clone());
            }
        }
        drop(slots);
        for key in emptied {
            pool.gc(&key);
        }
        tracing::debug!(pool = pool.id, snap, "selfmanaged snap removed");
        Ok(())
    }

    async fn list_snaps(&self, loc: ObjectLocator<'_>) -> Result<SnapSetInfo> {
        self.gate().await?;
        Self::check_loc(&loc)?;
        let pool = self.inner.pool(loc.pool)?;
        let slot = pool
            .slot(&slot_key(loc.namespace, loc.oid))
            .ok_or_else(|| Error::NotFound(format!("object {:?} does not exist", loc.oid)))?;
        let info = lock_slot(&slot).snapset_info();
        Ok(info)
    }

    async fn blocklist_add(&self, addr: &EntityAddr, expire: Duration) -> Result<UTime> {
        self.gate().await?;
        Ok(self.inner.blocklist_add(addr, expire))
    }
}
