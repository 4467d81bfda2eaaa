// Binary COPY on the writer's libpqxx connection: the tuple encoder and libpq's copy calls.
#include "store/write/binary_copy.hpp"

#include <libpq-fe.h>
#include <pqxx/except>

#include <cstring>
#include <memory>

namespace plugmon::agent::store {

namespace {

/// "PGCOPY\n\377\r\n\0", then flags and header-extension length, both int32 0.
constexpr char header[19] = {'P',  'G', 'C', 'O', 'P', 'Y', '\n', '\377', '\r', '\n',
                             '\0', 0,   0,   0,   0,   0,   0,    0,      0};

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 00:00:00 UTC).
constexpr std::int64_t pg_epoch_us = 946'684'800'000'000;

using result_ptr = std::unique_ptr<PGresult, decltype(&PQclear)>;

/// Throws the libpqxx exception the writer tells apart for a failed result: unique_violation,
/// broken_connection, or sql_error with the SQLSTATE (which the writer classifies).
[[noreturn]] void throw_for(PGconn* c, const PGresult* r, const std::string& query) {
    const char* state = r != nullptr ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    std::string msg = r != nullptr ? PQresultErrorMessage(r) : "";
    if (msg.empty()) msg = PQerrorMessage(c);
    if (PQstatus(c) != CONNECTION_OK) throw pqxx::broken_connection(msg);
    if (state == nullptr) throw pqxx::sql_error(msg, query);
    const std::string_view s(state);
    if (s == "23505") throw pqxx::unique_violation(msg, query, state);
    if (s.substr(0, 2) == "08") throw pqxx::broken_connection(msg);
    throw pqxx::sql_error(msg, query, state);
}

}  // namespace

binary_copy::binary_copy(pg_connection& c, std::string_view table,
                         const std::vector<std::string>& columns)
    : conn_(c) {
    statement_ = "COPY ";
    statement_.append(table);
    statement_ += " (";
    for (std::size_t i = 0; i < columns.size(); ++i) statement_ += (i ? ", " : "") + columns[i];
    statement_ += ") FROM STDIN (FORMAT binary)";
    PGconn* pg = conn_.raw();
    if (pg == nullptr) throw pqxx::broken_connection("binary COPY without a connection");
    const result_ptr r(PQexec(pg, statement_.c_str()), &PQclear);
    if (!r || PQresultStatus(r.get()) != PGRES_COPY_IN) throw_for(pg, r.get(), statement_);
    buf_.reserve(chunk_bytes + 64 * 1024);
    buf_.append(header, sizeof header);
}

binary_copy::~binary_copy() {
    if (done_) return;
    // Abandoned by an exception: end the COPY with CopyFail, so the server leaves the copy state
    // (the transaction is then aborted, and libpqxx rolls it back), and drain its results.
    PGconn* pg = conn_.raw();
    if (pg == nullptr) return;
    if (PQputCopyEnd(pg, "abandoned by the client") == 1)
        while (PGresult* r = PQgetResult(pg)) PQclear(r);
}

binary_copy& binary_copy::row(std::int16_t fields) {
    if (buf_.size() >= chunk_bytes) flush();
    put_u16(static_cast<std::uint16_t>(fields));
    return *this;
}

binary_copy& binary_copy::int4(std::int32_t v) {
    put_u32(4);
    put_u32(static_cast<std::uint32_t>(v));
    return *this;
}

binary_copy& binary_copy::int8(std::int64_t v) {
    put_u32(8);
    put_u64(static_cast<std::uint64_t>(v));
    return *this;
}

binary_copy& binary_copy::float8(double v) {
    std::uint64_t bits = 0;
    static_assert(sizeof bits == sizeof v);
    std::memcpy(&bits, &v, sizeof v);
    put_u32(8);
    put_u64(bits);
    return *this;
}

binary_copy& binary_copy::boolean(bool v) {
    put_u32(1);
    buf_.push_back(v ? '\1' : '\0');
    return *this;
}

binary_copy& binary_copy::timestamptz(std::chrono::system_clock::time_point t) {
    const std::int64_t us =
        std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
    return int8(us - pg_epoch_us);
}

binary_copy& binary_copy::null() {
    put_u32(0xffffffffu);  // -1
    return *this;
}

binary_copy& binary_copy::bytes(std::string_view v) {
    put_u32(static_cast<std::uint32_t>(v.size()));
    buf_.append(v);
    return *this;
}

void binary_copy::put_u16(std::uint16_t v) {
    const char b[2] = {static_cast<char>(v >> 8), static_cast<char>(v)};
    buf_.append(b, sizeof b);
}

void binary_copy::put_u32(std::uint32_t v) {
    const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                       static_cast<char>(v >> 8), static_cast<char>(v)};
    buf_.append(b, sizeof b);
}

void binary_copy::put_u64(std::uint64_t v) {
    put_u32(static_cast<std::uint32_t>(v >> 32));
    put_u32(static_cast<std::uint32_t>(v));
}

void binary_copy::flush() {
    if (buf_.empty()) return;
    PGconn* pg = conn_.raw();
    // A blocking connection: 1 once libpq has taken the bytes (it sends as its buffer fills).
    if (PQputCopyData(pg, buf_.data(), static_cast<int>(buf_.size())) != 1) {
        done_ = true;  // the connection failed; there is no COPY left to end
        throw pqxx::broken_connection(std::string("binary COPY: ") + PQerrorMessage(pg));
    }
    buf_.clear();
}

void binary_copy::complete() {
    put_u16(0xffffu);  // the trailer: -1
    flush();
    PGconn* pg = conn_.raw();
    done_ = true;
    if (PQputCopyEnd(pg, nullptr) != 1)
        throw pqxx::broken_connection(std::string("binary COPY: ") + PQerrorMessage(pg));
    finish_results();
}

void binary_copy::finish_results() {
    PGconn* pg = conn_.raw();
    result_ptr failed(nullptr, &PQclear);
    while (PGresult* raw = PQgetResult(pg)) {
        result_ptr r(raw, &PQclear);
        if (PQresultStatus(raw) != PGRES_COMMAND_OK && !failed) failed = std::move(r);
    }
    if (failed) throw_for(pg, failed.get(), statement_);
    if (PQstatus(pg) != CONNECTION_OK)
        throw pqxx::broken_connection(std::string("binary COPY: ") + PQerrorMessage(pg));
}

}  // namespace plugmon::agent::store
