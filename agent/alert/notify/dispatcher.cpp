// The dispatcher: the outbox in front, one worker thread per receiver behind it (messages with
// grouping and the storm guard for webhook/Slack, a re-sent state table for Alertmanager).
#include "alert/notify/dispatcher.hpp"

#include "alert/notify/am_state.hpp"
#include "alert/notify/http_client.hpp"
#include "alert/notify/payloads.hpp"
#include "alert/notify/signing.hpp"
#include "common/exposition.hpp"
#include "common/rfc3339.hpp"
#include "common/sha256.hpp"
#include "log/log.hpp"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <utility>

#include <spdlog/spdlog.h>

namespace plugmon::agent::alert::notify {

using nlohmann::json;
using std::chrono::nanoseconds;
using clock_duration = time_point::duration;

namespace {

constexpr auto storm_window = std::chrono::minutes(1);
enum failure_reason { r_timeout, r_network, r_4xx, r_5xx, r_429, reason_count };
constexpr const char* reason_names[reason_count] = {"timeout", "network", "4xx", "5xx", "429"};

std::string read_secret(const std::string& receiver, const char* key, const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    if (in) ss << in.rdbuf();
    if (!in || in.bad())
        throw std::invalid_argument("receiver \"" + receiver + "\": " + key + " \"" + path +
                                    "\" cannot be read");
    std::string s = ss.str();
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    if (s.empty())
        throw std::invalid_argument("receiver \"" + receiver + "\": " + key + " \"" + path +
                                    "\" is empty");
    return s;
}

std::string group_id(const std::vector<std::string>& ids) {
    if (ids.size() == 1) return ids.front();
    std::string joined;
    for (const auto& id : ids) joined += id + "\n";
    return (ids.empty() ? "sum_" : "grp_") + to_hex(sha256(joined)).substr(0, 32);
}

std::int64_t unix_seconds(time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace

/// One receiver's queue, message in flight, statistics and thread. Everything but the
/// constants (spec, client, keys, predecessor) and `abort` is guarded by mu.
struct dispatcher::worker {
    /// What a reload made of it: `end` is written with both mu and the dispatcher's mu_ held.
    enum class fate : std::uint8_t { serving, replaced, removed };

    struct message {
        std::string id;
        std::vector<outbox_record> records;
        std::string body;
        bool summary = false;
        int attempts = 0;
        time_point next_attempt{};
    };

    receiver_spec spec;
    http_client client;
    std::string signing_key, bearer;
    const dispatcher_options* opts = nullptr;
    outbox* box = nullptr;

    mutable std::mutex mu;
    std::condition_variable cv;
    bool stopping = false, exited = false;
    std::atomic<bool> abort{false};
    std::uint64_t generation = 0;  // bumped by every enqueue, so a waiting worker re-checks
    std::deque<outbox_record> queue;
    std::optional<message> current;
    bool in_flight = false;
    std::set<std::pair<std::string, std::string>> dead_firings;  // (fingerprint, episode)
    std::deque<time_point> sent_times;                           // messages in the last minute
    std::optional<time_point> last_summary;
    am_table table;
    bool am_dirty = false;
    time_point am_last_send{}, am_next_attempt{};
    int am_attempts = 0;
    std::vector<event_kind> am_undelivered;
    std::mt19937_64 rng{std::random_device{}()};
    fate end = fate::serving;
    bool adopted = false;  // a successor took its records and statistics (it joined the thread)
    /// The worker of the same name this one replaces (set before the thread starts).
    worker* predecessor = nullptr;

    // statistics
    std::uint64_t delivered[event_kind_count] = {};
    std::uint64_t requests = 0, failed[reason_count] = {}, dead_lettered = 0, coalesced = 0;
    std::uint64_t invalid = 0, resolve_skipped = 0, worker_errors = 0;
    std::string last_error;
    std::optional<time_point> last_success;
    std::thread thread;

    worker(const receiver_spec& s, const dispatcher_options& o, outbox& b)
        : spec(s),
          client(
              s.name,
              s.type == receiver_type::alertmanager ? trim_slash(s.url) + "/api/v2/alerts" : s.url,
              s.timeout),
          opts(&o), box(&b) {
        if (!s.secret_file.empty()) {
            try {
                signing_key =
                    webhook_signing_key(read_secret(s.name, "secret_file", s.secret_file));
            } catch (const std::invalid_argument& e) {
                throw std::invalid_argument("receiver \"" + s.name + "\": secret_file \"" +
                                            s.secret_file + "\": " + e.what());
            }
        }
        if (!s.bearer_token_file.empty())
            bearer = read_secret(s.name, "bearer_token_file", s.bearer_token_file);
    }

    /// Whether a reload leaves this receiver as it is: everything but where it was declared,
    /// and the secrets read from its files.
    bool same_as(const worker& o) const {
        const auto key = [](const worker& w) {
            const receiver_spec& s = w.spec;
            return std::tie(s.name, s.type, s.url, s.secret_file, s.bearer_token_file, s.headers,
                            s.timeout, s.max_notifications_per_minute, s.resend_interval,
                            s.resolved_resend_for, s.max_event_age, w.signing_key, w.bearer);
        };
        return key(*this) == key(o);
    }

    static std::string trim_slash(std::string u) {
        while (!u.empty() && u.back() == '/') u.pop_back();
        return u;
    }

    time_point now() const {
        return opts->clock ? opts->clock() : std::chrono::system_clock::now();
    }
    bool is_am() const { return spec.type == receiver_type::alertmanager; }
    std::size_t queue_length() const {
        return queue.size() + (current ? current->records.size() : 0) +
               (am_dirty ? table.size() : 0);
    }

    nanoseconds backoff(int attempt, std::optional<std::chrono::seconds> retry_after) {
        const auto& b = opts->backoff;
        double d = double(b.initial.count()) * std::pow(b.factor, double(std::max(attempt - 1, 0)));
        d = std::min(d, double(b.cap.count()));
        std::uniform_real_distribution<double> jitter(1.0 - b.jitter, 1.0 + b.jitter);
        auto delay = nanoseconds(std::int64_t(d * jitter(rng)));
        if (retry_after)
            delay = std::max<nanoseconds>(delay, std::min(*retry_after, opts->retry_after_cap));
        return delay;
    }

    // Sleeps until `until` (by the configured clock), new work, or stop; at most idle_wait.
    void wait(std::unique_lock<std::mutex>& lock, std::optional<time_point> until) {
        auto real = std::chrono::duration_cast<std::chrono::milliseconds>(opts->idle_wait);
        if (until) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*until - now());
            real =
                std::clamp(left + std::chrono::milliseconds(1), std::chrono::milliseconds(0), real);
        }
        auto seen = generation;
        cv.wait_for(lock, real, [&] { return stopping || generation != seen; });
    }

    void note_failure(const http_result& r) {
        failure_reason reason = r.failure == http_failure::timeout   ? r_timeout
                                : r.failure == http_failure::network ? r_network
                                : r.status == 429                    ? r_429
                                : r.status >= 500                    ? r_5xx
                                                                     : r_4xx;
        ++failed[reason];
        last_error = r.failure != http_failure::none
                         ? r.error
                         : "HTTP " + std::to_string(r.status) +
                               (r.body_excerpt.empty() ? "" : ": " + r.body_excerpt);
    }

    static bool retryable(const http_result& r) {
        return r.failure != http_failure::none || r.status >= 500 || r.status == 429 ||
               r.status == 408 || r.status == 425;
    }

    http_headers headers_for(const std::string& id, const std::string& body) const;
    void bury(outbox_record r, unsigned status, const std::string& error);
    bool keep(outbox_record& r, time_point t);
    std::optional<time_point> form_message(time_point t);
    void finish_message(const http_result& r, time_point t);
    bool message_step();
    void absorb(std::vector<outbox_record> records);
    void persist_table();
    bool am_step();
    void finish_am(const http_result& worst, std::size_t invalid_alerts, time_point t);
    void load_table();
    std::vector<outbox_record> take_records();
    void take_stats(worker& old);
    void adopt();
    void retire();
    void run();
};

http_headers dispatcher::worker::headers_for(const std::string& id, const std::string& body) const {
    std::string ts = std::to_string(unix_seconds(now()));
    http_headers h = {{"content-type", "application/json"}};
    if (!is_am()) {
        h.emplace_back("webhook-id", id);
        h.emplace_back("webhook-timestamp", ts);
        if (!signing_key.empty())
            h.emplace_back("webhook-signature", webhook_signature(signing_key, id, ts, body));
    }
    if (!bearer.empty()) h.emplace_back("authorization", "Bearer " + bearer);
    for (const auto& [k, v] : spec.headers) h.emplace_back(k, v);
    return h;
}

void dispatcher::worker::bury(outbox_record r, unsigned status, const std::string& error) {
    r.last_status = status;
    r.last_error = error;
    r.dead_at = now();
    if (r.n.event == event_kind::firing)
        dead_firings.emplace(r.n.alert.fingerprint, r.n.alert.episode);
    ++dead_lettered;
    log::warn("alert", "notification dead-lettered",
              {{"receiver", spec.name},
               {"notification", r.n.id},
               {"event", to_string(r.n.event)},
               {"fingerprint", r.n.alert.fingerprint},
               {"error", error}});
    box->bury(r);
}

// Whether a queued record is still to be sent; otherwise it is skipped or dead-lettered here.
bool dispatcher::worker::keep(outbox_record& r, time_point t) {
    if (r.n.event == event_kind::resolved &&
        dead_firings.count({r.n.alert.fingerprint, r.n.alert.episode}) != 0) {
        ++resolve_skipped;
        box->remove(r.seq);
        return false;
    }
    if (r.n.created != time_point{} && t - r.n.created > spec.max_event_age) {
        bury(std::move(r), 0, "older than max_event_age");
        return false;
    }
    return true;
}

// Takes the next message off the queue into `current`; or returns when to look again.
std::optional<time_point> dispatcher::worker::form_message(time_point t) {
    while (!sent_times.empty() && t - sent_times.front() >= storm_window) sent_times.pop_front();
    if (queue.empty()) return std::nullopt;
    payload_context ctx{opts->external_url, t};
    message m;
    if (int(sent_times.size()) < std::max(spec.max_notifications_per_minute, 1)) {
        std::string group = queue.front().group;
        for (auto it = queue.begin(); it != queue.end();) {
            if (it->group != group) {
                ++it;
                continue;
            }
            if (keep(*it, t)) m.records.push_back(std::move(*it));
            it = queue.erase(it);
        }
        if (m.records.empty()) return t;  // all skipped: look again at once
        std::vector<notification> events;
        for (const auto& r : m.records) events.push_back(r.n);
        m.id = group;
        m.body = spec.type == receiver_type::slack
                     ? slack_message(events, ctx).dump()
                     : webhook_message(spec.name, events, ctx, opts->max_alerts_per_message).dump();
    } else if (!last_summary || t - *last_summary >= storm_window) {
        std::vector<std::string> ids;
        for (auto& r : queue)
            if (keep(r, t)) m.records.push_back(std::move(r));
        queue.clear();
        if (m.records.empty()) return t;
        std::vector<notification> events;
        for (const auto& r : m.records) events.push_back(r.n), ids.push_back(r.n.id);
        auto s = summarize(events);
        m.id = "sum_" + group_id(ids).substr(ids.size() == 1 ? 0 : 4);
        m.summary = true;
        m.body = spec.type == receiver_type::slack ? summary_slack(s, ctx).dump()
                                                   : summary_webhook(spec.name, s, ctx).dump();
    } else {
        time_point next = sent_times.front() + storm_window;
        return std::min(next, *last_summary + storm_window);
    }
    m.next_attempt = t;
    current = std::move(m);
    return std::nullopt;
}

void dispatcher::worker::finish_message(const http_result& r, time_point t) {
    message& m = *current;
    ++m.attempts;
    if (r.failure == http_failure::none && r.status >= 200 && r.status < 300) {
        for (const auto& rec : m.records) {
            box->remove(rec.seq);
            if (m.summary)
                ++coalesced;
            else
                ++delivered[int(rec.n.event)];
        }
        sent_times.push_back(t);
        if (m.summary) last_summary = t;
        last_success = t;
        current.reset();
        return;
    }
    note_failure(r);
    for (auto& rec : m.records) rec.attempts = m.attempts, rec.last_status = r.status;
    if (!retryable(r)) {
        for (auto& rec : m.records) bury(std::move(rec), r.status, last_error);
        current.reset();
        return;
    }
    // Too old to keep retrying: dead-letter those records, keep retrying the others.
    std::vector<outbox_record> young;
    for (auto& rec : m.records) {
        if (rec.n.created != time_point{} && t - rec.n.created > spec.max_event_age)
            bury(std::move(rec), r.status, "older than max_event_age; last: " + last_error);
        else
            young.push_back(std::move(rec));
    }
    if (young.empty()) return current.reset();
    m.records = std::move(young);
    m.next_attempt =
        t + std::chrono::duration_cast<clock_duration>(backoff(m.attempts, r.retry_after));
}

bool dispatcher::worker::message_step() {
    std::unique_lock lock(mu);
    if (stopping) return false;
    time_point t = now();
    std::optional<time_point> until;
    if (!current) until = form_message(t);
    if (!current) {
        if (until && *until <= t) return true;
        wait(lock, until);
        return true;
    }
    if (current->next_attempt > t) {
        wait(lock, current->next_attempt);
        return true;
    }
    std::string id = current->id, body = current->body;
    auto headers = headers_for(id, body);
    in_flight = true;
    ++requests;
    lock.unlock();
    http_result r = client.post(headers, body, &abort);
    lock.lock();
    in_flight = false;
    finish_message(r, now());
    return true;
}

void dispatcher::worker::persist_table() {
    box->write_state("am-" + spec.name + ".json", table.to_json().dump());
}

void dispatcher::worker::absorb(std::vector<outbox_record> records) {
    time_point t = now();
    bool changed = false;
    for (const auto& r : records) {
        if (table.apply(r.n, t)) {
            changed = true;
            am_undelivered.push_back(r.n.event);
        }
    }
    // The table is the durable form from here on: persist it, then drop the records.
    if (changed) persist_table();
    for (const auto& r : records) box->remove(r.seq);
    am_dirty = am_dirty || changed;
}

void dispatcher::worker::finish_am(const http_result& worst, std::size_t invalid_alerts,
                                   time_point t) {
    invalid += invalid_alerts;
    if (worst.failure == http_failure::none && worst.status >= 200 && worst.status < 300) {
        for (auto e : am_undelivered) ++delivered[int(e)];
        am_undelivered.clear();
        am_dirty = false;
        am_attempts = 0;
        am_last_send = t;
        last_success = t;
        return;
    }
    note_failure(worst);
    if (retryable(worst)) {
        ++am_attempts;
        // The table is re-sent every resend_interval anyway: a retry never waits longer than that
        // (unless Alertmanager asked for it with Retry-After), so a recovered Alertmanager is in
        // step again within one interval, however long it was down.
        nanoseconds delay = backoff(am_attempts, worst.retry_after);
        if (!worst.retry_after) delay = std::min(delay, spec.resend_interval);
        am_next_attempt = t + std::chrono::duration_cast<clock_duration>(delay);
        return;
    }
    // 400 (Alertmanager kept the valid alerts) or another 4xx: not retried; the next resend
    // interval sends the table again.
    log::warn("alert", "Alertmanager refused the alerts",
              {{"receiver", spec.name}, {"error", last_error}});
    am_undelivered.clear();
    am_dirty = false;
    am_attempts = 0;
    am_last_send = t;
}

bool dispatcher::worker::am_step() {
    std::unique_lock lock(mu);
    if (stopping) return false;
    time_point t = now();
    if (!queue.empty()) {
        std::vector<outbox_record> records(std::make_move_iterator(queue.begin()),
                                           std::make_move_iterator(queue.end()));
        queue.clear();
        absorb(std::move(records));
    }
    if (table.expire(t, spec.resolved_resend_for)) persist_table();
    auto resend = std::chrono::duration_cast<clock_duration>(spec.resend_interval);
    time_point due = am_dirty ? am_next_attempt : std::max(am_next_attempt, am_last_send + resend);
    if (table.empty() || due > t) {
        wait(lock, table.empty() ? std::nullopt : std::optional<time_point>(due));
        return true;
    }
    auto alerts = table.alerts(t, spec.resend_interval, opts->external_url);
    auto headers = headers_for("", "");
    in_flight = true;
    lock.unlock();
    http_result worst;
    worst.status = 200;
    std::size_t invalid_alerts = 0, sent_requests = 0;
    std::size_t batch = std::max<std::size_t>(opts->alertmanager_batch, 1);
    for (std::size_t i = 0; i < alerts.size(); i += batch) {
        std::vector<am_alert> chunk(
            alerts.begin() + std::ptrdiff_t(i),
            alerts.begin() + std::ptrdiff_t(std::min(i + batch, alerts.size())));
        http_result r = client.post(headers, alertmanager_body(chunk).dump(), &abort);
        ++sent_requests;
        if (r.failure == http_failure::none && r.status == 400) invalid_alerts += chunk.size();
        if (r.failure != http_failure::none || r.status < 200 || r.status >= 300) worst = r;
        if (retryable(r)) break;
    }
    lock.lock();
    in_flight = false;
    requests += sent_requests;
    finish_am(worst, invalid_alerts, now());
    return true;
}

void dispatcher::worker::load_table() {
    if (!is_am()) return;
    auto text = box->read_state("am-" + spec.name + ".json");
    if (!text) return;
    try {
        table = am_table::from_json(json::parse(*text));
        am_dirty = !table.empty();
    } catch (const std::exception& e) {
        spdlog::error("alert notify: receiver {}: state table unreadable ({}); starting empty",
                      spec.name, e.what());
    }
}

// Everything not yet delivered (mu held): the message being retried, then the queue.
std::vector<outbox_record> dispatcher::worker::take_records() {
    std::vector<outbox_record> out;
    if (current)
        for (auto& r : current->records) out.push_back(std::move(r));
    current.reset();
    for (auto& r : queue) out.push_back(std::move(r));
    queue.clear();
    return out;
}

// Counters move to the successor (both locked), so a replaced receiver's series never go back.
void dispatcher::worker::take_stats(worker& old) {
    for (int e = 0; e < event_kind_count; ++e) delivered[e] += std::exchange(old.delivered[e], 0);
    for (int r = 0; r < reason_count; ++r) failed[r] += std::exchange(old.failed[r], 0);
    for (auto field : {&worker::requests, &worker::dead_lettered, &worker::coalesced,
                       &worker::invalid, &worker::resolve_skipped, &worker::worker_errors})
        this->*field += std::exchange(old.*field, 0);
    if (old.last_success && (!last_success || *old.last_success > *last_success))
        last_success = old.last_success;
    if (last_error.empty()) last_error = old.last_error;
}

// A reload replaced `predecessor` with this worker. Once its attempt in flight has finished or
// timed out, what it left undelivered is queued again in outbox order (seq) together with what
// was submitted since, so events of one fingerprint still arrive in sequence.
void dispatcher::worker::adopt() {
    worker& old = *predecessor;
    old.thread.join();
    std::scoped_lock lock(mu, old.mu);
    std::vector<outbox_record> records = old.take_records();
    for (auto& r : queue) records.push_back(std::move(r));
    std::stable_sort(records.begin(), records.end(),
                     [](const outbox_record& a, const outbox_record& b) { return a.seq < b.seq; });
    queue.assign(std::make_move_iterator(records.begin()), std::make_move_iterator(records.end()));
    take_stats(old);
    dead_firings.merge(old.dead_firings);
    if (old.is_am() && is_am()) {
        table = std::move(old.table);
        am_dirty = old.am_dirty;
        am_undelivered = std::move(old.am_undelivered);
        am_last_send = old.am_last_send;  // a new URL is tried at once if a send is due
    } else if (old.is_am()) {
        old.retire();
    } else if (!is_am()) {
        sent_times = std::move(old.sent_times);
        last_summary = old.last_summary;
    }
    old.adopted = true;
    ++generation;
}

// An Alertmanager receiver that a reload removed or made a webhook (mu held): its table goes, so
// a receiver of that name configured later starts from what the engine sends it then; the
// alerts Alertmanager holds expire at their endsAt.
void dispatcher::worker::retire() {
    if (table.empty()) return;
    log::warn("alert", "Alertmanager receiver retired by a reload; its alerts there expire",
              {{"receiver", spec.name}, {"alerts", table.size()}});
    table = am_table{};
    am_dirty = false;
    am_undelivered.clear();
    persist_table();
}

void dispatcher::worker::run() {
    if (predecessor != nullptr) adopt();
    bool logged = false;
    for (;;) {
        try {
            if (!(is_am() ? am_step() : message_step())) break;
        } catch (const std::exception& e) {
            std::unique_lock lock(mu);
            ++worker_errors;
            in_flight = false;
            last_error = e.what();
            if (!logged)
                log::error("alert", "receiver worker error (logged once)",
                           {{"receiver", spec.name}, {"error", e.what()}});
            logged = true;
            wait(lock, std::nullopt);
        } catch (...) {
            std::unique_lock lock(mu);
            ++worker_errors;
            in_flight = false;
            wait(lock, std::nullopt);
        }
    }
    std::lock_guard lock(mu);
    if (end == fate::removed) {
        if (is_am()) retire();
        const std::size_t left = queue.size() + (current ? current->records.size() : 0);
        log::warn("alert",
                  "receiver removed by a reload has stopped; its undelivered notifications stay "
                  "in the outbox until a configuration brings it back",
                  {{"receiver", spec.name}, {"undelivered", left}});
    }
    exited = true;
    cv.notify_all();
}

dispatcher::update::update() = default;
dispatcher::update::update(update&&) noexcept = default;
dispatcher::update& dispatcher::update::operator=(update&&) noexcept = default;
dispatcher::update::~update() = default;

dispatcher::dispatcher(dispatcher_options opts)
    : opts_(std::move(opts)), outbox_(opts_.outbox_dir) {
    while (!opts_.external_url.empty() && opts_.external_url.back() == '/')
        opts_.external_url.pop_back();
    std::lock_guard guard(mu_);
    for (const auto& spec : opts_.receivers) {
        if (find(spec.name) != nullptr)
            throw std::invalid_argument("receiver \"" + spec.name + "\": declared twice");
        workers_.push_back(build(spec));
    }
    std::vector<outbox_record> pending = outbox_.load();
    for (const auto& r : outbox_.dead())
        if (auto* w = find(r.n.receiver); w != nullptr && r.n.event == event_kind::firing)
            w->dead_firings.emplace(r.n.alert.fingerprint, r.n.alert.episode);
    for (auto& w : workers_) w->load_table();
    if (!pending.empty())
        spdlog::info("alert notify: {} notifications from a previous run wait in {}",
                     pending.size(), outbox_.dir());
    distribute(std::move(pending));
    for (auto& w : workers_) w->thread = std::thread([p = w.get()] { p->run(); });
}

dispatcher::~dispatcher() { stop(std::chrono::seconds(5)); }

std::unique_ptr<dispatcher::worker> dispatcher::build(const receiver_spec& spec) {
    try {
        return std::make_unique<worker>(spec, opts_, outbox_);
    } catch (const std::invalid_argument& e) {
        if (spec.file.empty()) throw;
        throw std::invalid_argument(spec.file + ":" + std::to_string(spec.line) + ": " + e.what());
    }
}

dispatcher::worker* dispatcher::find(const std::string& receiver) const {
    for (const auto& w : workers_)
        if (w->spec.name == receiver) return w.get();
    return nullptr;
}

void dispatcher::distribute(std::vector<outbox_record> records) {
    std::map<worker*, std::vector<outbox_record>> per;
    for (auto& r : records) {
        worker* w = find(r.n.receiver);
        if (w == nullptr) {
            // Left in the outbox: a later configuration may bring the receiver back.
            spdlog::warn("alert notify: notification {} is for unknown receiver \"{}\"; kept",
                         r.n.id, r.n.receiver);
            orphans_.push_back(std::move(r));
            continue;
        }
        per[w].push_back(std::move(r));
    }
    for (auto& [w, list] : per) {
        std::lock_guard lock(w->mu);
        for (auto& r : list) w->queue.push_back(std::move(r));
        ++w->generation;
        w->cv.notify_all();
    }
}

void dispatcher::submit(std::vector<notification> batch) {
    // One message per (receiver, event kind) of this batch: the group id.
    std::map<std::pair<std::string, event_kind>, std::vector<std::string>> groups;
    std::vector<outbox_record> records;
    {
        std::lock_guard guard(mu_);
        for (auto& n : batch) {
            if (find(n.receiver) == nullptr) {
                unknown_receiver_.fetch_add(1, std::memory_order_relaxed);
                spdlog::warn(
                    "alert notify: notification {} is for unknown receiver \"{}\"; dropped", n.id,
                    n.receiver);
                continue;
            }
            groups[{n.receiver, n.event}].push_back(n.id);
            outbox_record r;
            r.n = std::move(n);
            records.push_back(std::move(r));
        }
    }
    for (auto& r : records) r.group = group_id(groups[{r.n.receiver, r.n.event}]);
    if (records.empty()) return;
    outbox_.append(records);
    std::lock_guard guard(mu_);
    if (!stopped_) distribute(std::move(records));
}

dispatcher::update dispatcher::prepare(const std::vector<receiver_spec>& receivers) {
    update u;
    for (const auto& spec : receivers) {
        if (std::find(u.names_.begin(), u.names_.end(), spec.name) != u.names_.end())
            throw std::invalid_argument("receiver \"" + spec.name + "\": declared twice");
        u.names_.push_back(spec.name);
        auto fresh = build(spec);  // reads the secret files now: a bad one refuses the reload
        std::lock_guard guard(mu_);
        const worker* running = find(spec.name);
        if (running != nullptr && running->same_as(*fresh)) continue;
        (running != nullptr ? u.changed : u.added).push_back(spec.name);
        u.fresh_.push_back(std::move(fresh));
    }
    std::lock_guard guard(mu_);
    for (const auto& w : workers_)
        if (std::find(u.names_.begin(), u.names_.end(), w->spec.name) == u.names_.end())
            u.removed.push_back(w->spec.name);
    return u;
}

// Puts `fresh` in place of the worker of its name, if any (that one, or one still retiring
// after a removal, becomes its predecessor), and starts it.
void dispatcher::install(std::unique_ptr<worker> fresh) {
    const std::string& name = fresh->spec.name;
    worker* old = nullptr;
    auto active = std::find_if(workers_.begin(), workers_.end(),
                               [&](const auto& w) { return w->spec.name == name; });
    if (active != workers_.end()) {
        old = active->get();
        retiring_.push_back(std::move(*active));
        workers_.erase(active);
    } else {
        for (const auto& w : retiring_) {
            std::lock_guard lock(w->mu);
            if (w->spec.name == name && w->end == worker::fate::removed) old = w.get();
        }
    }
    // Records kept for this name (a previous run's, or a removed receiver's): first in line.
    for (auto it = orphans_.begin(); it != orphans_.end();) {
        if (it->n.receiver != name) {
            ++it;
            continue;
        }
        fresh->queue.push_back(std::move(*it));
        it = orphans_.erase(it);
    }
    if (old != nullptr) {
        std::scoped_lock lock(fresh->mu, old->mu);
        fresh->take_stats(*old);
        old->end = worker::fate::replaced;
        old->stopping = true;
        old->cv.notify_all();
        fresh->predecessor = old;
    } else {
        fresh->load_table();
    }
    for (const auto& r : outbox_.dead())
        if (r.n.receiver == name && r.n.event == event_kind::firing)
            fresh->dead_firings.emplace(r.n.alert.fingerprint, r.n.alert.episode);
    fresh->thread = std::thread([p = fresh.get()] { p->run(); });
    workers_.push_back(std::move(fresh));
}

// Lets go of retired workers whose thread has ended; a removed one's records join orphans_.
void dispatcher::reap() {
    for (auto it = retiring_.begin(); it != retiring_.end();) {
        worker& w = **it;
        bool done = false, join = false;
        {
            std::lock_guard lock(w.mu);
            if (w.end == worker::fate::replaced) {
                done = w.adopted;
            } else if (w.exited) {
                done = join = true;
                for (auto& r : w.take_records()) orphans_.push_back(std::move(r));
            }
        }
        if (!done) {
            ++it;
            continue;
        }
        if (join) w.thread.join();
        it = retiring_.erase(it);
    }
    std::stable_sort(orphans_.begin(), orphans_.end(),
                     [](const outbox_record& a, const outbox_record& b) { return a.seq < b.seq; });
}

void dispatcher::apply(update u, const std::function<void()>& switch_over) {
    {
        std::lock_guard guard(mu_);
        if (stopped_) {
            spdlog::warn("alert notify: stopped; the receivers of the reload are not started");
            return;
        }
        reap();
        for (auto& fresh : u.fresh_) install(std::move(fresh));
    }
    if (switch_over) switch_over();
    std::lock_guard guard(mu_);
    if (stopped_) return;
    for (auto it = workers_.begin(); it != workers_.end();) {
        worker& w = **it;
        if (std::find(u.names_.begin(), u.names_.end(), w.spec.name) != u.names_.end()) {
            ++it;
            continue;
        }
        {
            std::lock_guard lock(w.mu);
            w.end = worker::fate::removed;
            w.stopping = true;  // an attempt in flight finishes (or times out) first
            w.cv.notify_all();
        }
        retiring_.push_back(std::move(*it));
        it = workers_.erase(it);
    }
}

void dispatcher::stop(std::chrono::milliseconds timeout) {
    std::lock_guard guard(mu_);
    if (stopped_) return;
    stopped_ = true;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::vector<worker*> all;
    for (auto& w : workers_) all.push_back(w.get());
    for (auto& w : retiring_) all.push_back(w.get());
    for (auto* w : all) {
        std::lock_guard lock(w->mu);
        w->stopping = true;
        w->cv.notify_all();
    }
    for (auto* w : all) {
        std::unique_lock lock(w->mu);
        if (!w->cv.wait_until(lock, deadline, [&] { return w->exited; }))
            w->abort.store(true, std::memory_order_release);  // the client gives up in ~50 ms
    }
    // A replaced worker's thread is joined by its successor's, which is joined here.
    for (auto& w : workers_)
        if (w->thread.joinable()) w->thread.join();
    for (auto& w : retiring_)
        if (w->end == worker::fate::removed && w->thread.joinable()) w->thread.join();
}

bool dispatcher::replay(const std::string& id) {
    auto dead = outbox_.dead();
    auto it = std::find_if(dead.begin(), dead.end(), [&](const auto& r) { return r.n.id == id; });
    if (it == dead.end()) return false;
    std::lock_guard guard(mu_);
    if (find(it->n.receiver) == nullptr) return false;
    auto r = outbox_.resurrect(id);
    if (!r) return false;
    worker* w = find(r->n.receiver);
    {
        std::lock_guard lock(w->mu);
        w->dead_firings.erase({r->n.alert.fingerprint, r->n.alert.episode});
    }
    if (!stopped_) distribute({std::move(*r)});
    return true;
}

std::size_t dispatcher::unrouted() const {
    std::size_t n = orphans_.size();
    for (const auto& w : retiring_) {
        std::lock_guard lock(w->mu);
        // A message in flight may still be delivered: it counts once its attempt ended.
        if (w->end == worker::fate::removed)
            n += w->queue.size() + (w->current && !w->in_flight ? w->current->records.size() : 0);
    }
    return n;
}

std::vector<dead_letter> dispatcher::dead_letters() const {
    std::vector<dead_letter> out;
    for (const auto& r : outbox_.dead())
        out.push_back({r.n.id, r.n.receiver, r.n.event, r.n.alert.fingerprint, r.n.created,
                       r.attempts, r.last_status, r.last_error});
    return out;
}

json dispatcher::status() const {
    json receivers = json::object();
    std::map<std::string, std::size_t> dead_per;
    for (const auto& r : outbox_.dead()) ++dead_per[r.n.receiver];
    std::lock_guard guard(mu_);
    for (const auto& w : workers_) {
        std::lock_guard lock(w->mu);
        receivers[w->spec.name] = {
            {"type", to_string(w->spec.type)},
            {"queue_length", w->queue_length()},
            {"in_flight", w->in_flight},
            {"last_error", w->last_error},
            {"last_success", w->last_success ? json(format_rfc3339(*w->last_success)) : json()},
            {"dead_letters", dead_per[w->spec.name]}};
    }
    return {{"receivers", receivers},
            {"outbox_bytes", outbox_.bytes()},
            {"corrupt_records", outbox_.corrupt_records()},
            {"unrouted", unrouted()}};
}

void dispatcher::render_metrics(std::string& out) const {
    namespace ex = exposition;
    struct family_def {
        const char* name;
        const char* type;
        const char* help;
        std::uint64_t worker::*field;
    };
    static const family_def per_receiver[] = {
        {"plugmon_notification_requests_total", "counter", "HTTP requests sent to the receiver.",
         &worker::requests},
        {"plugmon_notifications_dead_lettered_total", "counter",
         "Notifications moved to the dead letters.", &worker::dead_lettered},
        {"plugmon_notifications_coalesced_total", "counter",
         "Notifications delivered inside a storm summary.", &worker::coalesced},
        {"plugmon_notifications_resolve_skipped_total", "counter",
         "Resolves not sent because the receiver never got the firing.", &worker::resolve_skipped},
        {"plugmon_alertmanager_alerts_invalid_total", "counter",
         "Alerts in POSTs that Alertmanager answered with 400.", &worker::invalid},
        {"plugmon_notification_worker_errors_total", "counter",
         "Unexpected errors in a receiver's worker.", &worker::worker_errors},
    };
    std::lock_guard guard(mu_);
    std::vector<std::unique_lock<std::mutex>> locks;
    for (const auto& w : workers_) locks.emplace_back(w->mu);
    ex::family(out, "plugmon_notifications_total", "counter", "Notifications delivered.");
    for (const auto& w : workers_)
        for (int e = 0; e < event_kind_count; ++e)
            ex::sample(out, "plugmon_notifications_total",
                       {{"receiver", w->spec.name}, {"event", to_string(event_kind(e))}},
                       w->delivered[e]);
    ex::family(out, "plugmon_notification_requests_failed_total", "counter",
               "Failed requests, by reason.");
    for (const auto& w : workers_)
        for (int r = 0; r < reason_count; ++r)
            ex::sample(out, "plugmon_notification_requests_failed_total",
                       {{"receiver", w->spec.name}, {"reason", reason_names[r]}}, w->failed[r]);
    ex::family(out, "plugmon_notification_queue_length", "gauge",
               "Notifications waiting for delivery.");
    for (const auto& w : workers_)
        ex::sample(out, "plugmon_notification_queue_length", {{"receiver", w->spec.name}},
                   std::uint64_t(w->queue_length()));
    for (const auto& f : per_receiver) {
        ex::family(out, f.name, f.type, f.help);
        for (const auto& w : workers_)
            ex::sample(out, f.name, {{"receiver", w->spec.name}}, (*w).*f.field);
    }
    locks.clear();
    ex::family(out, "plugmon_notification_outbox_bytes", "gauge",
               "Bytes of the notification outbox (pending and dead letters).");
    ex::sample(out, "plugmon_notification_outbox_bytes", {}, outbox_.bytes());
    ex::family(out, "plugmon_notification_outbox_corrupt_records_total", "counter",
               "Outbox records that failed validation and were set aside.");
    ex::sample(out, "plugmon_notification_outbox_corrupt_records_total", {},
               outbox_.corrupt_records());
    ex::family(out, "plugmon_notifications_unknown_receiver_total", "counter",
               "Notifications submitted for a receiver that is not configured.");
    ex::sample(out, "plugmon_notifications_unknown_receiver_total", {},
               unknown_receiver_.load(std::memory_order_relaxed));
    ex::family(out, "plugmon_notifications_unrouted", "gauge",
               "Notifications kept in the outbox for a receiver that is not configured now.");
    ex::sample(out, "plugmon_notifications_unrouted", {}, std::uint64_t(unrouted()));
}

}  // namespace plugmon::agent::alert::notify
