// The drain loop and the per-event aggregation.
#include "ingest/drainer.hpp"
#include "log/log.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <string>

#include <unistd.h>

namespace plugmon::agent {

drain::drain(series_registry& store, options opt) : store_(store), opt_(opt) {}

drain::~drain() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
}

void drain::start() {
    running_.store(true);
    thread_ = std::thread([this] {
        try {
            loop();
        } catch (const std::exception& e) {
            spdlog::critical("drain thread stopped: {}", e.what());
        }
        running_.store(false);
    });
}

bool drain::stop(std::chrono::nanoseconds timeout) {
    stop_.store(true);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (running_.load() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (running_.load()) return false;
    if (thread_.joinable()) thread_.join();
    return true;
}

void drain::add(std::shared_ptr<producer> p) {
    totals_.producers_registered.add(1);
    std::lock_guard<std::mutex> lock(mu_);
    registry_.push_back(std::move(p));
    ++generation_;
}

std::vector<std::shared_ptr<producer>> drain::producers() const {
    std::lock_guard<std::mutex> lock(mu_);
    return registry_;
}

std::vector<std::shared_ptr<producer>> drain::finished() const {
    std::lock_guard<std::mutex> lock(mu_);
    return {finished_.begin(), finished_.end()};
}

void drain::loop() {
    std::vector<std::shared_ptr<producer>> list;
    std::uint64_t seen_generation = ~0ull;
    auto last_housekeeping = std::chrono::steady_clock::now();
    for (;;) {
        const bool stopping = stop_.load();
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (generation_ != seen_generation) {
                list = registry_;
                seen_generation = generation_;
            }
        }
        std::uint64_t n = 0;
        bool removed = false;
        for (auto& p : list) {
            if (p->state() == producer_state::finished) continue;
            const bool gone = p->gone();  // before draining: everything it wrote is visible
            if (p->state() == producer_state::attached) n += drain_producer(*p, gone);
            if (gone) {
                finish(*p);
                removed = true;
            }
        }
        const auto now = std::chrono::steady_clock::now();
        if (stopping || now - last_housekeeping >= std::chrono::milliseconds(10)) {
            const auto wall = std::chrono::system_clock::now();
            if (stopping || wall >= window_start_ + opt_.flush_interval || wall < window_start_)
                close_window(wall, list);
            // Four times a second: probes sample once a second, so a 5 s window still holds
            // the dozen points a fit needs (repeated values form steps; the fit copes).
            if (now - last_resource_check_ >= std::chrono::milliseconds(250)) {
                last_resource_check_ = now;
                observe_resources(list,
                                  std::chrono::duration<double>(now.time_since_epoch()).count());
            }
            last_housekeeping = now;
            std::uint64_t backlog = 0, worst_ppm = 0;
            for (auto& p : list) {
                if (p->state() != producer_state::attached) continue;
                collect_drops(*p);
                std::uint64_t pending = 0;
                double ratio = 0;
                p->seg_->backlog(pending, ratio);
                backlog += pending;
                worst_ppm = std::max<std::uint64_t>(worst_ppm, std::uint64_t(ratio * 1e6));
            }
            totals_.backlog.store(backlog, std::memory_order_relaxed);
            totals_.ring_used_ppm.store(worst_ppm, std::memory_order_relaxed);
        }
        if (removed) {
            std::lock_guard<std::mutex> lock(mu_);
            std::erase_if(registry_, [this](const std::shared_ptr<producer>& p) {
                if (p->state() != producer_state::finished) return false;
                finished_.push_back(p);
                if (finished_.size() > finished_kept) finished_.pop_front();
                return true;
            });
            ++generation_;
        }
        totals_.passes.fetch_add(1, std::memory_order_relaxed);
        // The clock read of this pass (after its drain), published only now that it is complete.
        totals_.last_pass_ns.store(now.time_since_epoch() / std::chrono::nanoseconds(1),
                                   std::memory_order_relaxed);
        if (stopping) break;  // that was the final pass over every producer
        if (n == 0) std::this_thread::sleep_for(opt_.idle_sleep);
    }
}

namespace {
std::chrono::system_clock::time_point align_down(std::chrono::system_clock::time_point t,
                                                 std::chrono::nanoseconds step) {
    const auto since = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch());
    return std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(since - since % step));
}

constexpr std::uint64_t pack(std::uint32_t a, std::uint32_t b, std::uint32_t c, std::uint32_t d) {
    // Name ids are below layout::max_name_capacity (2^16): four fit in one key.
    return std::uint64_t(a) | std::uint64_t(b) << 16 | std::uint64_t(c) << 32 |
           std::uint64_t(d) << 48;
}
static_assert(layout::max_name_capacity <= (1u << 16));

/// The slot of the query front (256 entries) that caches `key` (Fibonacci hashing spreads packed
/// keys over the top bits).
constexpr std::size_t query_front_slot(std::uint64_t key) {
    return std::size_t((key * layout::fibonacci_multiplier) >> 56);
}

bool is_error(const event& e) { return (e.flags & layout::flag_error) != 0; }
}  // namespace

// Windows are aligned to multiples of the flush interval in wall-clock time, so every agent's
// buckets line up. Events belong to the window in which they were drained.
void drain::close_window(std::chrono::system_clock::time_point now,
                         const std::vector<std::shared_ptr<producer>>& list) {
    const auto start = window_start_;
    window_start_ = align_down(now, opt_.flush_interval);
    if (start.time_since_epoch().count() == 0) return;  // the first call opens the first window
    std::size_t expired = 0;
    window_batch b = store_.close_window(start, opt_.flush_interval, opt_.expiry_windows, expired);
    totals_.windows.add(1);
    apply_live_settings();  // once per window: a lock, rarely anything to apply
    if (expired != 0) forget_series(list);
    if (opt_.windows != nullptr) {
        b.slow = std::move(window_slow_);
        window_slow_.clear();
        add_resource_rows(b, list);
        opt_.windows->publish(std::move(b));  // never waits for a sink
    }
}

void drain::reconfigure(live_settings s) {
    {
        std::lock_guard<std::mutex> lock(settings_mu_);
        pending_ = std::move(s);
    }
    if (!running_.load()) apply_live_settings();  // nothing to race with yet
}

// Drain thread (or before it starts): between two windows, so every window is counted under
// one set of settings.
void drain::apply_live_settings() {
    std::optional<live_settings> s;
    {
        std::lock_guard<std::mutex> lock(settings_mu_);
        s.swap(pending_);
    }
    if (!s) return;
    opt_.expiry_windows = s->expiry_windows;
    store_.set_budget(s->budget);
    store_.set_slow_threshold(std::move(s->slow_ns));
}

/// The resource figures at a window's close: each sampled producer's latest process sample and
/// each plugin's heap totals.
void drain::add_resource_rows(window_batch& b, const std::vector<std::shared_ptr<producer>>& list) {
    const auto at =
        b.bucket_start + std::chrono::duration_cast<std::chrono::system_clock::duration>(b.length);
    for (const auto& p : list) {
        const producer::process_resources& r = p->resources_;
        if (p->state() != producer_state::attached || !r.sampled.load(std::memory_order_acquire))
            continue;
        resource_row row;
        row.at = at;
        row.pid = p->pid();
        row.process = p->name();
        row.rss_bytes = r.rss_bytes.get();
        row.cpu_ns = r.cpu_ns.get();
        row.open_fds = r.open_fds.get();
        row.threads = r.threads.get();
        row.read_bytes = r.read_bytes.get();
        row.write_bytes = r.write_bytes.get();
        row.fd_limit = p->limits().open_files;
        row.threads_limit = p->limits().processes;
        b.resources.push_back(std::move(row));
        b.leaks.push_back({"", p->name(), p->pid(),
                           r.leak.suspected.load(std::memory_order_relaxed),
                           r.leak.slope.load(std::memory_order_relaxed),
                           r.leak.r2.load(std::memory_order_relaxed)});
    }
    const series_registry::view v = store_.snapshot();
    for (const auto& m : v.memories) {
        if (m->allocated.get() == 0) continue;
        resource_row row;
        row.at = at;
        row.plugin = m->plugin;
        row.heap_allocated_bytes = m->allocated.get();
        row.heap_freed_bytes = m->freed.get();
        b.resources.push_back(std::move(row));
        b.leaks.push_back({m->plugin, "", 0, m->leak.suspected.load(std::memory_order_relaxed),
                           m->leak.slope.load(std::memory_order_relaxed),
                           m->leak.r2.load(std::memory_order_relaxed)});
    }
    for (const auto& pool : v.pools)
        b.pools.push_back(
            {pool->plugin, pool->in_use.get(), pool->idle.get(), pool->waiting.get()});
    for (const auto& p : list) {
        const producer::counts& c = p->stats();
        b.drops.push_back({p->pid(), p->name(), c.full.get() + c.torn.get() + c.invalid.get()});
    }
}

/// RSS of every producer and live heap bytes of every plugin, into their leak detectors.
void drain::observe_resources(const std::vector<std::shared_ptr<producer>>& list, double t) {
    for (const auto& p : list) {
        if (p->state() != producer_state::attached ||
            !p->resources_.sampled.load(std::memory_order_acquire))
            continue;
        p->resources_.leak.observe(t, double(p->resources_.rss_bytes.get()), opt_.leak);
    }
    store_.observe_memory(t, opt_.leak);
}

/// Series expired: no producer may keep a pointer to one. Their caches refill on the next event.
void drain::forget_series(const std::vector<std::shared_ptr<producer>>& list) {
    for (const auto& p : list) {
        p->query_front_.fill({});
        p->queries_.clear();
        p->executions_.clear();
        p->counters_.clear();
        p->pools_.clear();  // the expired pool series took this producer's last sample with it
        p->memories_.clear();
    }
}

void drain::collect_drops(producer& p) {
    bool corrupt = false;
    const std::uint64_t d = p.seg_->take_new_drops(corrupt);
    if (d) {
        p.counts_.full.add(d);
        totals_.full.add(d);
    }
    if (corrupt) quarantine(p, "drop counters went backwards");
}

void drain::quarantine(producer& p, const char* why) {
    if (p.state() != producer_state::attached) return;
    // The counts first, the state last (release): whoever sees the producer quarantined sees
    // what its quarantine cost.
    const std::uint64_t lost = count_abandoned(p);
    totals_.producers_quarantined.add(1);
    p.state_.store(int(producer_state::quarantined), std::memory_order_release);
    log::error("ingest", "producer quarantined: its segment is no longer read",
               {{"pid", p.pid()}, {"process", p.name()}, {"reason", why}, {"unread_events", lost}});
}

// The quarantine itself is no event: what it costs is the events the producer published and the
// drain will now never read, so recorded = drained + dropped{full,torn,invalid} stays exact.
// Only lane indices are read, never a slot; a lane whose indices are impossible has nothing
// countable. The helper lane's samples are not events the plugin recorded.
std::uint64_t drain::count_abandoned(producer& p) {
    const mapped_segment& seg = *p.seg_;
    const std::uint32_t lanes = seg.geometry().lane_count + 1;
    const std::uint32_t helper = seg.helper_lane();
    p.abandoned_to_.resize(lanes, 0);
    std::uint64_t lost = 0;
    for (std::uint32_t i = 0; i < lanes; ++i) {
        std::uint64_t tail = 0, head = 0;
        if (i == helper || !seg.lane_indices(i, tail, head)) continue;
        const std::uint64_t from = std::max(tail, p.abandoned_to_[i]);  // never counted twice
        if (head <= from) continue;
        lost += head - from;
        p.abandoned_to_[i] = head;
    }
    if (lost != 0) {
        p.counts_.invalid.add(lost);
        totals_.invalid.add(lost);
    }
    return lost;
}

void drain::finish(producer& p) {
    if (p.state() == producer_state::attached) collect_drops(p);
    // what a quarantined producer published after its quarantine is lost too
    if (p.state() == producer_state::quarantined) count_abandoned(p);
    for (auto& [plugin, last] : p.pools_) {
        last.series->in_use.set(last.series->in_use.get() - last.in_use);
        last.series->idle.set(last.series->idle.get() - last.idle);
        last.series->waiting.set(last.series->waiting.get() - last.waiting);
    }
    p.pools_.clear();
    // The process is gone and its heap with it: what it still held counts as freed.
    for (auto& [plugin, last] : p.memories_) last.series->freed.add(last.allocated - last.freed);
    p.memories_.clear();
    log::info("ingest", p.clean_.load() ? "producer exited" : "producer is gone",
              {{"pid", p.pid()},
               {"process", p.name()},
               {"drained", p.counts_.drained.get()},
               {"dropped_full", p.counts_.full.get()},
               {"torn", p.counts_.torn.get()},
               {"invalid", p.counts_.invalid.get()}});
    p.seg_.reset();
    if (p.memfd_ >= 0) ::close(p.memfd_);
    p.memfd_ = -1;
    totals_.producers_finished.add(1);
    p.state_.store(int(producer_state::finished), std::memory_order_release);  // after the counts
}

// A query with a statement, or a slow one: per-statement totals and the slow-query ring. Every
// id here was validated when the event's series was first looked up.
void drain::note_statement(producer& p, const event& e, const statement_text* st, bool slow) {
    mapped_segment& seg = *p.seg_;
    const auto text_of = [&seg](std::uint32_t id) {
        const std::string* n = seg.name(id);
        return n != nullptr ? *n : std::string();
    };
    const bool failed = (e.flags & layout::flag_error) != 0;
    if (st != nullptr) {
        const std::uint64_t key = std::uint64_t(e.plugin) << 32 | e.aux;
        auto it = p.statements_.find(key);
        if (it == p.statements_.end())
            it = p.statements_
                     .emplace(key, opt_.statements->find_or_create(text_of(e.plugin), st->text,
                                                                   st->fingerprint))
                     .first;
        statement_book::record(*it->second, e.duration_ns, e.value, failed, slow);
    }
    if (slow) {
        slow_sample sample;
        sample.at = std::chrono::system_clock::now();
        sample.plugin = text_of(e.plugin);
        sample.op = text_of(e.op);
        sample.table = text_of(e.table);
        sample.tenant = text_of(e.tenant);
        if (st != nullptr) {
            sample.statement = st->text;
            sample.fingerprint = st->fingerprint;
        }
        sample.duration_ns = e.duration_ns;
        sample.rows = e.value;
        sample.error = failed;
        sample.pid = p.pid();
        // The window's slow queries go to the store too (bounded; beyond, counted as unstored).
        if (opt_.windows != nullptr) {
            if (window_slow_.size() < max_slow_per_window)
                window_slow_.push_back(sample);
            else
                totals_.slow_unstored.add(1);
        }
        opt_.statements->add_slow(std::move(sample));
    }
}

// The per-kind aggregation below runs once per event on the drain thread. Each returns false
// for an event that names something the producer never published (counted invalid); the
// dispatch and the query path are forced inline into drain_lane's loop.

[[gnu::always_inline]] inline bool drain::consume(producer& p, const event& e) {
    switch (e.kind) {
        case layout::event_kind::query:
            return consume_query(p, e);
        case layout::event_kind::execution:
            return consume_execution(p, e);
        case layout::event_kind::counter:
            return consume_counter(p, e);
        case layout::event_kind::pool:
            return consume_pool(p, e);
        case layout::event_kind::resource:
            if (layout::resource_field(e.aux) == layout::resource_field::alloc_bytes)
                return consume_heap(p, e);
            return consume_process_sample(p, e);
        case layout::event_kind::none:
            break;
    }
    return false;
}

/// The query series of (plugin, op, table, tenant) ids, from the producer's cache or the store;
/// nullptr when a name was never published. Off the hot path: the front caches the hits.
[[gnu::noinline]] query_series* drain::find_query(producer& p, const event& e, std::uint64_t key) {
    auto it = p.queries_.find(key);
    if (it == p.queries_.end()) {
        mapped_segment& seg = *p.seg_;
        const std::string* pl = seg.name(e.plugin);
        const std::string* op = seg.name(e.op);
        const std::string* tb = seg.name(e.table);
        const std::string* tn = seg.name(e.tenant);
        if (!pl || !op || !tb || !tn) return nullptr;
        it = p.queries_.emplace(key, store_.query(*pl, *op, *tb, *tn)).first;
    }
    return it->second;
}

[[gnu::always_inline]] inline bool drain::consume_query(producer& p, const event& e) {
    // checked before anything is counted: an event is either aggregated or invalid
    const statement_text* st = e.aux != 0 ? p.seg_->statement(e.aux) : nullptr;
    if (e.aux != 0 && st == nullptr) return false;  // a statement never published
    const std::uint64_t key = pack(e.plugin, e.op, e.table, e.tenant);
    producer::query_front& front = p.query_front_[query_front_slot(key)];
    query_series* s = front.series;
    if (s == nullptr || front.key != key) {
        s = find_query(p, e, key);
        if (s == nullptr) return false;
        front = {key, s};
    }
    s->record(e.duration_ns, is_error(e), e.value);
    if (s->folded) totals_.folded.add(1);
    const bool slow = e.duration_ns >= s->slow_ns;
    if (slow) totals_.slow.add(1);
    if ((st != nullptr || slow) && opt_.statements != nullptr) note_statement(p, e, st, slow);
    return true;
}

bool drain::consume_execution(producer& p, const event& e) {
    const std::uint64_t key = pack(e.plugin, 0, 0, e.tenant);
    auto it = p.executions_.find(key);
    if (it == p.executions_.end()) {
        const std::string* pl = p.seg_->name(e.plugin);
        const std::string* tn = p.seg_->name(e.tenant);
        if (!pl || !tn) return false;
        it = p.executions_.emplace(key, store_.execution(*pl, *tn)).first;
    }
    execution_series* s = it->second;
    s->record(e.duration_ns, e.value2, is_error(e));
    if (s->folded) totals_.folded.add(1);
    return true;
}

bool drain::consume_counter(producer& p, const event& e) {
    const std::uint64_t key = pack(e.plugin, e.op, 0, 0);
    auto it = p.counters_.find(key);
    if (it == p.counters_.end()) {
        const std::string* pl = p.seg_->name(e.plugin);
        const std::string* ev = p.seg_->name(e.op);
        if (!pl || !ev || ev->empty()) return false;
        it = p.counters_.emplace(key, store_.counter(*pl, *ev)).first;
    }
    counter_series* s = it->second;
    s->total.add(e.value);
    s->active = true;
    if (s->folded) totals_.folded.add(1);
    return true;
}

/// A pool sample replaces this producer's previous one in the plugin's sums.
bool drain::consume_pool(producer& p, const event& e) {
    auto it = p.pools_.find(e.plugin);
    if (it == p.pools_.end()) {
        const std::string* pl = p.seg_->name(e.plugin);
        if (!pl) return false;
        it = p.pools_.emplace(e.plugin, producer::pool_last{store_.pool(*pl), 0, 0, 0}).first;
    }
    producer::pool_last& last = it->second;
    const std::uint64_t in_use = e.value & 0xffffffffu, idle = e.value >> 32, waiting = e.value2;
    pool_series& s = *last.series;
    s.in_use.set(s.in_use.get() - last.in_use + in_use);
    s.idle.set(s.idle.get() - last.idle + idle);
    s.waiting.set(s.waiting.get() - last.waiting + waiting);
    last.in_use = in_use;
    last.idle = idle;
    last.waiting = waiting;
    s.active = true;
    if (s.folded) totals_.folded.add(1);
    return true;
}

/// A plugin's heap totals since its producer started (they only grow): the growth is added.
bool drain::consume_heap(producer& p, const event& e) {
    auto it = p.memories_.find(e.plugin);
    if (it == p.memories_.end()) {
        const std::string* pl = p.seg_->name(e.plugin);
        if (pl == nullptr || e.plugin == layout::name_empty) return false;
        it = p.memories_.emplace(e.plugin, producer::memory_last{store_.memory(*pl), 0, 0}).first;
    }
    producer::memory_last& last = it->second;
    if (e.value < last.allocated || e.value2 < last.freed || e.value2 > e.value) return false;
    last.series->allocated.add(e.value - last.allocated);
    last.series->freed.add(e.value2 - last.freed);
    last.allocated = e.value;
    last.freed = e.value2;
    last.series->active = true;
    return true;
}

/// One field of the process sample (the probe's helper thread writes one event per field).
bool drain::consume_process_sample(producer& p, const event& e) {
    producer::process_resources& r = p.resources_;
    switch (layout::resource_field(e.aux)) {
        case layout::resource_field::rss_bytes:
            r.rss_bytes.set(e.value);
            break;
        case layout::resource_field::cpu_ns:
            r.cpu_ns.set(e.value);
            break;
        case layout::resource_field::open_fds:
            r.open_fds.set(e.value);
            break;
        case layout::resource_field::threads:
            r.threads.set(e.value);
            break;
        case layout::resource_field::read_bytes:
            r.read_bytes.set(e.value);
            break;
        case layout::resource_field::write_bytes:
            r.write_bytes.set(e.value);
            break;
        case layout::resource_field::alloc_bytes:  // consume_heap's
            break;
    }
    // release: the cells above are visible to whoever sees sampled (see process_resources)
    r.sampled.store(true, std::memory_order_release);
    return true;
}

/// One pass over every lane of `p` (the consume functions are inlined here).
std::uint64_t drain::drain_producer(producer& p, bool final) {
    mapped_segment& seg = *p.seg_;
    const std::uint32_t lanes = seg.geometry().lane_count + 1;
    const double npt = seg.tsc_clock() ? opt_.ns_per_tick : 1.0;
    std::uint64_t n = 0;
    for (std::uint32_t i = 0; i < lanes; ++i) {
        const lane_result r =
            seg.drain_lane(i, final, npt, [&](const event& e) { return consume(p, e); });
        if (r.corrupt) {
            quarantine(p, "impossible lane indices");
            return n;
        }
        // The probe's own samples are not events the plugin recorded. Read after the lane: the
        // probe publishes helper_lane before its first sample, and drain_lane's acquire of head
        // made that store visible if any sample was read here.
        if (r.drained && i == seg.helper_lane()) {
            p.counts_.resource_samples.add(r.drained);
            totals_.resource_samples.add(r.drained);
        } else if (r.drained) {
            p.counts_.drained.add(r.drained);
            totals_.drained.add(r.drained);
        }
        if (r.invalid) {
            const std::uint64_t before = p.counts_.invalid.get();
            p.counts_.invalid.add(r.invalid);
            totals_.invalid.add(r.invalid);
            // Logged each time the producer's count doubles, not per pass: a producer that
            // writes garbage without end must not be able to flood the agent's log.
            if (std::bit_width(before) != std::bit_width(before + r.invalid))
                log::warn("ingest", "invalid slots from a producer",
                          {{"pid", p.pid()}, {"invalid", before + r.invalid}, {"lane", i}});
        }
        if (r.torn) {
            p.counts_.torn.add(r.torn);
            totals_.torn.add(r.torn);
        }
        n += r.drained + r.invalid + r.torn;
    }
    return n;
}

}  // namespace plugmon::agent
