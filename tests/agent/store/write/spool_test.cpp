// Unit tests of the on-disk spool: order across restarts, the cap, corrupt and foreign files,
// write errors, and kill -9 of a process in the middle of appending.
#include "store/write/spool.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

using namespace plugmon::agent;
using namespace plugmon::agent::store;
namespace fs = std::filesystem;

/// A fresh directory, removed with everything in it at scope exit.
struct temp_dir {
    std::string path;
    temp_dir() {
        std::string pattern = (fs::temp_directory_path() / "plugmon-spool-XXXXXX").string();
        if (!::mkdtemp(pattern.data()))
            throw std::system_error(errno, std::system_category(), "mkdtemp");
        path = pattern;
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string spool_dir() const { return path + "/spool"; }
};

/// A batch of `run`/`seq` with `queries` query rollups (each with `seq` calls) and one slow sample
/// whose statement is `statement_bytes` long.
batch make_batch(std::uint64_t run, std::uint64_t seq, std::size_t queries,
                 std::size_t statement_bytes = 16) {
    batch b;
    b.host = "spool-test";
    b.run_id = run;
    b.seq = seq;
    b.window.length = std::chrono::seconds(10);
    for (std::size_t i = 0; i < queries; ++i) {
        query_rollup q;
        q.plugin = "p" + std::to_string(i);
        q.op = "SELECT";
        q.calls = seq;
        q.sketch = std::string("\0sk\0", 4);
        b.window.queries.push_back(q);
    }
    slow_sample s;
    s.plugin = "p";
    s.statement = std::string(statement_bytes, static_cast<char>('a' + seq % 26));
    b.window.slow.push_back(s);
    return b;
}

std::uint64_t record_size(const batch& b) {
    return encode_record(1, b.rows(), encode_batch(b)).size();
}

std::string record_path(const std::string& dir, std::uint64_t id) {
    std::string digits = std::to_string(id);
    return dir + "/" + std::string(20 - digits.size(), '0') + digits + ".rec";
}

/// Every record, oldest first, popping each.
std::vector<spool::entry> drain(spool& s) {
    std::vector<spool::entry> out;
    while (auto e = s.front()) {
        s.pop(e->id);
        out.push_back(std::move(*e));
    }
    return out;
}

std::vector<std::uint64_t> seqs(const std::vector<spool::entry>& entries) {
    std::vector<std::uint64_t> out;
    for (const auto& e : entries) out.push_back(e.b.seq);
    return out;
}

void write_file(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

std::size_t count_temp_files(const std::string& dir) {
    std::size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir))
        n += e.path().filename().string().ends_with(".rec.tmp");
    return n;
}

TEST(spool, creates_its_directory_with_mode_0700) {
    temp_dir t;
    const std::string dir = t.path + "/a/b/spool";
    spool s({dir});
    struct stat st {};
    ASSERT_EQ(::stat(dir.c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    EXPECT_EQ(s.batches(), 0u);
    EXPECT_EQ(s.bytes(), 0u);
    EXPECT_FALSE(s.front().has_value());
    const std::string slash = t.path + "/c/spool/";  // a trailing slash names the same directory
    spool with_slash({slash});
    ASSERT_EQ(::stat((t.path + "/c/spool").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    EXPECT_EQ(with_slash.dir(), t.path + "/c/spool");
}

TEST(spool, throws_naming_the_path_when_the_directory_is_unusable) {
    temp_dir t;
    const std::string file = t.path + "/not-a-dir";
    write_file(file, "x");
    for (const std::string& dir : {file, file + "/spool"}) {
        try {
            spool s({dir});
            ADD_FAILURE() << "opened " << dir;
        } catch (const std::system_error& e) {
            EXPECT_NE(std::string(e.what()).find("not-a-dir"), std::string::npos) << e.what();
        }
    }
    EXPECT_THROW(spool({t.spool_dir(), 0}), spool_error);
}

TEST(spool, refuses_a_directory_another_spool_holds) {
    temp_dir t;
    spool first({t.spool_dir()});
    try {
        spool second({t.spool_dir()});
        ADD_FAILURE() << "two spools share a directory";
    } catch (const std::system_error& e) {
        EXPECT_NE(std::string(e.what()).find(t.spool_dir()), std::string::npos) << e.what();
    }
}

TEST(spool, returns_records_oldest_first_and_pop_is_idempotent) {
    temp_dir t;
    spool s({t.spool_dir()});
    std::uint64_t total = 0;
    std::vector<std::uint64_t> ids;
    for (std::uint64_t seq = 1; seq <= 5; ++seq) {
        const batch b = make_batch(1, seq, seq);
        total += record_size(b);
        ids.push_back(s.append(b));
    }
    EXPECT_EQ(ids, (std::vector<std::uint64_t>{1, 2, 3, 4, 5}));
    EXPECT_EQ(s.batches(), 5u);
    EXPECT_EQ(s.bytes(), total);
    EXPECT_EQ(s.appended_total(), 5u);

    auto e = s.front();
    ASSERT_TRUE(e);
    EXPECT_EQ(e->id, 1u);
    EXPECT_EQ(e->b.seq, 1u);
    EXPECT_EQ(e->bytes, record_size(make_batch(1, 1, 1)));
    EXPECT_EQ(s.front()->id, 1u);  // front does not consume
    s.pop(1);
    s.pop(1);
    s.pop(0);
    s.pop(999);
    EXPECT_EQ(s.batches(), 4u);
    EXPECT_EQ(s.bytes(), total - e->bytes);
    s.pop(3);  // out of order: the others keep their order
    EXPECT_EQ(seqs(drain(s)), (std::vector<std::uint64_t>{2, 4, 5}));
    EXPECT_EQ(s.batches(), 0u);
    EXPECT_EQ(s.bytes(), 0u);
    EXPECT_EQ(s.dropped_batches(drop_reason::full) + s.dropped_batches(drop_reason::corrupt), 0u);
}

TEST(spool, keeps_order_and_increasing_ids_across_a_restart) {
    temp_dir t;
    {
        spool s({t.spool_dir()});
        for (std::uint64_t seq = 1; seq <= 3; ++seq) s.append(make_batch(1, seq, 2));
        s.pop(s.front()->id);
    }
    std::uint64_t bytes_before = 0;
    {
        spool s({t.spool_dir()});  // a restart: a new object on the same directory
        EXPECT_EQ(s.batches(), 2u);
        EXPECT_EQ(s.appended_total(), 0u);
        bytes_before = s.bytes();
        EXPECT_EQ(bytes_before, 2 * record_size(make_batch(1, 2, 2)));
        EXPECT_EQ(s.append(make_batch(2, 1, 1)), 4u);
        EXPECT_EQ(s.append(make_batch(2, 2, 1)), 5u);
    }
    spool s({t.spool_dir()});
    const auto all = drain(s);
    ASSERT_EQ(all.size(), 4u);
    const std::vector<std::pair<std::uint64_t, std::uint64_t>> want = {
        {1, 2}, {1, 3}, {2, 1}, {2, 2}};
    for (std::size_t i = 0; i < all.size(); ++i) {
        EXPECT_EQ(all[i].b.run_id, want[i].first);
        EXPECT_EQ(all[i].b.seq, want[i].second);
        EXPECT_EQ(all[i].b.host, "spool-test");
        if (i > 0) {
            EXPECT_GT(all[i].id, all[i - 1].id);
        }
    }
    // Emptied, the next id still continues from the largest ever seen in this run.
    EXPECT_EQ(s.append(make_batch(3, 1, 1)), 6u);
}

TEST(spool, drops_the_oldest_records_when_full_and_counts_batches_and_rows) {
    temp_dir t;
    // Record k has k query rows and one slow row, so records grow with k.
    const std::uint64_t s1 = record_size(make_batch(1, 1, 1)),
                        s2 = record_size(make_batch(1, 2, 2)),
                        s3 = record_size(make_batch(1, 3, 3)),
                        s4 = record_size(make_batch(1, 4, 4));
    spool s({t.spool_dir(), s1 + s2 + s3, false});
    for (std::uint64_t seq = 1; seq <= 3; ++seq) s.append(make_batch(1, seq, seq));
    EXPECT_EQ(s.dropped_batches(drop_reason::full), 0u);
    EXPECT_EQ(s.bytes(), s1 + s2 + s3);
    // s2 + s3 + s4 > s1 + s2 + s3: both record 1 (2 rows) and record 2 (3 rows) must go.
    EXPECT_EQ(s.append(make_batch(1, 4, 4)), 4u);
    EXPECT_EQ(s.dropped_batches(drop_reason::full), 2u);
    EXPECT_EQ(s.dropped_rows(drop_reason::full), 2u + 3u);
    EXPECT_EQ(s.dropped_batches("full"), 2u);
    EXPECT_EQ(s.dropped_rows("full"), 5u);
    EXPECT_EQ(s.dropped_batches("corrupt"), 0u);
    EXPECT_EQ(s.bytes(), s3 + s4);
    EXPECT_EQ(s.batches(), 2u);
    EXPECT_FALSE(fs::exists(record_path(t.spool_dir(), 1)));
    EXPECT_FALSE(fs::exists(record_path(t.spool_dir(), 2)));
    EXPECT_EQ(seqs(drain(s)), (std::vector<std::uint64_t>{3, 4}));
    EXPECT_THROW(s.dropped_batches("other"), std::invalid_argument);
}

TEST(spool, drops_and_counts_a_record_larger_than_its_cap) {
    temp_dir t;
    const batch small = make_batch(1, 1, 1), big = make_batch(1, 2, 10, 100000);
    spool s({t.spool_dir(), record_size(small) * 3, true});
    EXPECT_EQ(s.append(small), 1u);
    EXPECT_EQ(s.append(big), 0u);  // not stored
    EXPECT_EQ(s.dropped_batches(drop_reason::full), 1u);
    EXPECT_EQ(s.dropped_rows(drop_reason::full), big.rows());
    EXPECT_EQ(s.batches(), 1u);
    EXPECT_EQ(s.appended_total(), 1u);
    EXPECT_EQ(s.bytes(), record_size(small));
    EXPECT_EQ(seqs(drain(s)), (std::vector<std::uint64_t>{1}));
}

TEST(spool, enforces_a_smaller_cap_on_restart_counting_rows_from_the_headers) {
    temp_dir t;
    std::uint64_t last = 0;
    {
        spool s({t.spool_dir()});
        for (std::uint64_t seq = 1; seq <= 4; ++seq) s.append(make_batch(1, seq, seq));
        last = record_size(make_batch(1, 4, 4));
    }
    spool s({t.spool_dir(), last, true});
    EXPECT_EQ(s.dropped_batches(drop_reason::full), 3u);
    EXPECT_EQ(s.dropped_rows(drop_reason::full), 2u + 3u + 4u);
    EXPECT_EQ(s.bytes(), last);
    EXPECT_EQ(seqs(drain(s)), (std::vector<std::uint64_t>{4}));
}

TEST(spool, skips_and_counts_corrupt_records_and_replays_the_rest_in_order) {
    temp_dir t;
    const std::string dir = t.spool_dir();
    {
        spool s({dir});
        for (std::uint64_t seq = 1; seq <= 7; ++seq) s.append(make_batch(1, seq, seq));
    }
    // 2: a bit flip in the payload (its header is intact: its 3 rows are counted)
    std::string rec = read_file(record_path(dir, 2));
    rec[rec.size() - 3] ^= 0x10;
    write_file(record_path(dir, 2), rec);
    // 3: truncated inside the header; 4: zero length; 5: a bit flip in the header (rows unknown)
    fs::resize_file(record_path(dir, 3), 20);
    fs::resize_file(record_path(dir, 4), 0);
    rec = read_file(record_path(dir, 5));
    rec[26] ^= 0x01;  // the row count
    write_file(record_path(dir, 5), rec);
    // 6: truncated inside the payload (header intact: 7 rows)
    fs::resize_file(record_path(dir, 6), fs::file_size(record_path(dir, 6)) - 1);
    // 9: a copy of record 7 under another id (the header names 7: 8 rows)
    fs::copy_file(record_path(dir, 7), record_path(dir, 9));

    spool s({dir});
    EXPECT_EQ(s.batches(), 8u);  // 1 to 7 and 9: validated only when read
    const auto all = drain(s);
    EXPECT_EQ(seqs(all), (std::vector<std::uint64_t>{1, 7}));
    EXPECT_EQ(s.dropped_batches(drop_reason::corrupt), 6u);
    EXPECT_EQ(s.dropped_rows(drop_reason::corrupt), 3u + 7u + 8u);
    EXPECT_EQ(s.dropped_batches(drop_reason::full), 0u);
    EXPECT_NE(s.last_corruption().find("00000000000000000009.rec: spool: record header: id: 7"),
              std::string::npos)
        << s.last_corruption();
    EXPECT_EQ(s.bytes(), 0u);
    EXPECT_EQ(s.batches(), 0u);
    for (std::uint64_t id = 1; id <= 9; ++id) EXPECT_FALSE(fs::exists(record_path(dir, id))) << id;
}

TEST(spool, removes_stray_temporary_files_and_ignores_foreign_ones) {
    temp_dir t;
    const std::string dir = t.spool_dir();
    {
        spool s({dir});
        s.append(make_batch(1, 1, 1));
    }
    write_file(dir + "/00000000000000000009.rec.tmp", "half a record");
    write_file(dir + "/notes.txt", "the user's");
    write_file(dir + "/123.rec", "too short a name");
    write_file(dir + "/00000000000000000002.rec.bak", "a backup");
    fs::create_directory(dir + "/00000000000000000005.rec");

    spool s({dir});
    EXPECT_FALSE(fs::exists(dir + "/00000000000000000009.rec.tmp"));
    EXPECT_TRUE(fs::exists(dir + "/notes.txt"));
    EXPECT_TRUE(fs::exists(dir + "/123.rec"));
    EXPECT_TRUE(fs::exists(dir + "/00000000000000000002.rec.bak"));
    EXPECT_TRUE(fs::is_directory(dir + "/00000000000000000005.rec"));
    EXPECT_EQ(s.batches(), 1u);
    EXPECT_GT(s.append(make_batch(1, 2, 1)), 9u);  // never reuses the temporary file's id
    EXPECT_EQ(seqs(drain(s)), (std::vector<std::uint64_t>{1, 2}));
    EXPECT_EQ(s.dropped_batches(drop_reason::corrupt), 0u);
    EXPECT_EQ(read_file(dir + "/notes.txt"), "the user's");
}

TEST(spool, works_without_sync) {
    temp_dir t;
    {
        spool s({t.spool_dir(), 1 << 20, false});
        for (std::uint64_t seq = 1; seq <= 20; ++seq) s.append(make_batch(1, seq, 1 + seq % 3));
    }
    spool s({t.spool_dir(), 1 << 20, false});
    std::vector<std::uint64_t> want;
    for (std::uint64_t seq = 1; seq <= 20; ++seq) want.push_back(seq);
    EXPECT_EQ(seqs(drain(s)), want);
}

TEST(spool, a_refused_write_throws_naming_the_file_and_changes_nothing) {
    // The file-size limit makes write(2) fail (EFBIG) the way a full disk does (ENOSPC): the
    // same error path.
    temp_dir t;
    spool s({t.spool_dir()});
    s.append(make_batch(1, 1, 1));
    const std::uint64_t bytes = s.bytes();
    rlimit old{};
    ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
    const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    rlimit small = old;
    small.rlim_cur = 512;
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
    std::string what;
    int code = 0;
    try {
        s.append(make_batch(1, 2, 1, 4096));
    } catch (const std::system_error& e) {
        what = e.what();
        code = e.code().value();
    }
    ::setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, old_handler);
    EXPECT_EQ(code, EFBIG) << what;
    EXPECT_NE(what.find(t.spool_dir() + "/00000000000000000002.rec.tmp"), std::string::npos)
        << what;
    EXPECT_EQ(count_temp_files(t.spool_dir()), 0u);
    EXPECT_EQ(s.batches(), 1u);
    EXPECT_EQ(s.bytes(), bytes);
    EXPECT_EQ(s.appended_total(), 1u);
    EXPECT_EQ(s.dropped_batches(drop_reason::full) + s.dropped_batches(drop_reason::corrupt), 0u);
    EXPECT_EQ(s.append(make_batch(1, 3, 1)), 2u);  // works again once the disk does
    EXPECT_EQ(seqs(drain(s)), (std::vector<std::uint64_t>{1, 3}));
}

TEST(spool, kill_9_while_appending_leaves_only_complete_records_in_order) {
    temp_dir t;
    const std::string dir = t.spool_dir();
    std::mt19937_64 rng(std::random_device{}());
    constexpr std::uint64_t rounds = 8;
    std::size_t temp_files_seen = 0;
    for (std::uint64_t round = 1; round <= rounds; ++round) {
        int ready[2];
        ASSERT_EQ(::pipe(ready), 0);
        const pid_t child = ::fork();
        ASSERT_GE(child, 0);
        if (child == 0) {
            ::close(ready[0]);
            try {
                spool s({dir, 1ull << 40, round % 2 == 0});
                for (std::uint64_t seq = 1;; ++seq) {
                    s.append(make_batch(round, seq, 1 + seq % 5, (seq % 7) * 20000));
                    if (seq == 1 && ::write(ready[1], "r", 1) != 1) ::_exit(4);
                }
            } catch (...) {
                ::_exit(3);
            }
        }
        ::close(ready[1]);
        char c = 0;
        ASSERT_EQ(::read(ready[0], &c, 1), 1) << "the child wrote no record";
        ::close(ready[0]);
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 30000));
        ASSERT_EQ(::kill(child, SIGKILL), 0);
        int status = 0;
        ASSERT_EQ(::waitpid(child, &status, 0), child);
        ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
        temp_files_seen += count_temp_files(dir);
    }
    spool s({dir});
    EXPECT_EQ(count_temp_files(dir), 0u);
    const auto all = drain(s);
    EXPECT_EQ(s.dropped_batches(drop_reason::corrupt), 0u) << s.last_corruption();
    EXPECT_EQ(s.dropped_batches(drop_reason::full), 0u);
    // Each round's records, in order, with no gap: seq 1, 2, ... k per run.
    std::uint64_t run = 0, next_seq = 0, last_id = 0;
    std::vector<std::uint64_t> per_run(rounds + 1, 0);
    for (const auto& e : all) {
        EXPECT_GT(e.id, last_id);
        last_id = e.id;
        if (e.b.run_id != run) {
            EXPECT_GT(e.b.run_id, run);
            run = e.b.run_id;
            next_seq = 1;
        }
        EXPECT_EQ(e.b.seq, next_seq) << "run " << run;
        ++next_seq;
        const batch want = make_batch(run, e.b.seq, 1 + e.b.seq % 5, (e.b.seq % 7) * 20000);
        EXPECT_EQ(e.b.rows(), want.rows());
        EXPECT_EQ(e.b.calls(), want.calls());
        EXPECT_EQ(e.b.window.slow.at(0).statement, want.window.slow.at(0).statement);
        ASSERT_LE(run, rounds);
        ++per_run[run];
    }
    for (std::uint64_t r = 1; r <= rounds; ++r) EXPECT_GE(per_run[r], 1u) << "round " << r;
    std::cout << "[          ] " << all.size() << " records over " << rounds << " kills, "
              << temp_files_seen << " unfinished temporary files found\n";
}

}  // namespace
