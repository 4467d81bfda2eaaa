// COPY … FROM STDIN (FORMAT binary) through libpq's copy calls, on a libpqxx connection and inside
// its open transaction: libpqxx 6.4 can only send COPY's text format.
#pragma once

#include <pqxx/connection>
#include <pqxx/connection_base>
#include <pqxx/connectionpolicy>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace plugmon::agent::store {

/// libpqxx's connect_direct that also remembers the libpq handle it holds. Every hook that
/// libpqxx uses to set its handle (connect, reconnect after a break, disconnect) passes through
/// here, so current() always equals the connection's own handle. Thread safety: that of the
/// connection that owns it (one thread).
class handle_keeping_policy final : public pqxx::connect_direct {
public:
    explicit handle_keeping_policy(const std::string& opts) : pqxx::connect_direct(opts) {}
    handle do_startconnect(handle orig) override {
        return handle_ = pqxx::connect_direct::do_startconnect(orig);
    }
    handle do_completeconnect(handle orig) override {
        return handle_ = pqxx::connect_direct::do_completeconnect(orig);
    }
    handle do_dropconnect(handle orig) noexcept override {
        return handle_ = pqxx::connect_direct::do_dropconnect(orig);
    }
    handle do_disconnect(handle orig) noexcept override {
        return handle_ = pqxx::connect_direct::do_disconnect(orig);
    }
    handle current() const noexcept { return handle_; }

private:
    handle handle_ = nullptr;
};

/// The writer's connection: a libpqxx connection (transactions, savepoints, in-doubt commits,
/// exceptions by SQLSTATE all as before) whose libpq handle is reachable for binary COPY.
///
/// Why this way: libpqxx 6.4 keeps its PGconn private and has no binary COPY. Its documented
/// extension point is the connection policy (pqxx::connection itself is
/// basic_connection_base<connect_direct>); this class is that template spelled out with a policy
/// that keeps the handle, so libpq calls run on the very connection, and inside the very
/// transaction, that libpqxx drives. Opening the connection with libpq alone would have meant
/// rewriting the ledger claim, the savepoint fallback and the error mapping on raw libpq.
/// The migrations take a pqxx::connection, so they run on a short connection of their own.
///
/// Thread safety: none (one thread, like any libpqxx connection).
class pg_connection final : public pqxx::connection_base {
public:
    /// Connects (throws pqxx::broken_connection on failure).
    explicit pg_connection(const std::string& conninfo)
        : pqxx::connection_base(policy_), options_(conninfo), policy_(options_) {
        init();
    }
    ~pg_connection() noexcept { close(); }
    pg_connection(const pg_connection&) = delete;
    pg_connection& operator=(const pg_connection&) = delete;

    /// The libpq handle libpqxx currently holds (nullptr while disconnected).
    pqxx::internal::pq::PGconn* raw() const noexcept { return policy_.current(); }

private:
    std::string options_;  // must be initialised before policy_, which keeps a reference
    handle_keeping_policy policy_;
};

/// One COPY table (columns) FROM STDIN (FORMAT binary): the constructor starts it, row() and the
/// field calls append a tuple, complete() ends it and checks the server's answer. Tuples are
/// streamed in chunks of about chunk_bytes, so the server works while the rest is encoded.
///
/// Format (PostgreSQL's "Binary Format" of COPY): the 11-byte signature "PGCOPY\n\377\r\n\0", an
/// int32 flags word (0) and an int32 header-extension length (0); per tuple an int16 field count,
/// then per field an int32 length (-1 for NULL) and the value in the type's binary send format,
/// big-endian; the trailer is an int16 -1.
///
/// Errors throw libpqxx exceptions: pqxx::unique_violation for SQLSTATE 23505 (the writer's
/// savepoint fallback catches it), pqxx::broken_connection when the connection is gone (or class
/// 08), otherwise pqxx::sql_error carrying the SQLSTATE (the writer retries or rejects by it). A COPY abandoned by an exception is ended with CopyFail
/// in the destructor, so the connection is left in an (aborted) transaction libpqxx can roll back.
///
/// Thread safety: none; the connection must be inside a transaction with no other command or
/// libpqxx stream running.
class binary_copy {
public:
    static constexpr std::size_t chunk_bytes = 256 * 1024;

    binary_copy(pg_connection& c, std::string_view table, const std::vector<std::string>& columns);
    ~binary_copy();
    binary_copy(const binary_copy&) = delete;
    binary_copy& operator=(const binary_copy&) = delete;

    /// Starts a tuple of `fields` fields (the caller then appends exactly that many).
    binary_copy& row(std::int16_t fields);
    binary_copy& int4(std::int32_t v);
    binary_copy& int8(std::int64_t v);
    /// The same 64 bits as a signed bigint (for uint64 values stored that way).
    binary_copy& int8_bits(std::uint64_t v) { return int8(static_cast<std::int64_t>(v)); }
    /// A uint64 count or sum as bigint, saturating at its largest value.
    binary_copy& int8_sat(std::uint64_t v) {
        constexpr auto top = static_cast<std::uint64_t>(INT64_MAX);
        return int8(static_cast<std::int64_t>(v > top ? top : v));
    }
    binary_copy& float8(double v);
    binary_copy& boolean(bool v);
    /// text: the bytes as they are (the server checks the encoding, as for text COPY).
    binary_copy& text(std::string_view v) { return bytes(v); }
    binary_copy& bytea(std::string_view v) { return bytes(v); }
    /// timestamptz: microseconds since 2000-01-01 00:00 UTC (truncated toward zero, as the text
    /// form the writer used).
    binary_copy& timestamptz(std::chrono::system_clock::time_point t);
    binary_copy& null();

    /// Sends the trailer and CopyDone, then reads the result; throws as described above.
    void complete();

private:
    binary_copy& bytes(std::string_view v);
    void put_u16(std::uint16_t v);
    void put_u32(std::uint32_t v);
    void put_u64(std::uint64_t v);
    /// Sends what is buffered (blocking, as libpqxx's own calls do).
    void flush();
    /// Reads every result of the COPY; throws for the first error.
    void finish_results();

    pg_connection& conn_;
    std::string statement_;
    std::string buf_;
    bool done_ = false;
};

}  // namespace plugmon::agent::store
