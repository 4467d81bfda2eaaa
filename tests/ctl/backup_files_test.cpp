// plugmonctl backup's file handling without a database: names, pruning, the sha256 of a file,
// and the manifest's refusals (each names the field at fault).
#include "ctl/backup/files.hpp"
#include "ctl/backup/manifest.hpp"

#include "common/sha256.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace backup = plugmon::ctl::backup;

struct temp_dir {
    temp_dir() {
        char tmpl[] = "/tmp/plugmon-backup-files.XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string path;
};

TEST(backup_files, names_sort_by_time_and_only_its_own_names_match) {
    const auto t0 = std::chrono::system_clock::now();
    const auto t1 = t0 + std::chrono::milliseconds(1);
    const std::string a = backup::backup_file_name(t0, false);
    const std::string b = backup::backup_file_name(t1, true);
    EXPECT_LT(a, b);
    EXPECT_TRUE(backup::is_backup_file_name(a)) << a;
    EXPECT_TRUE(backup::is_backup_file_name(b)) << b;
    EXPECT_NE(b.find("-schema-only.dump"), std::string::npos) << b;
    for (const std::string& other :
         std::vector<std::string>{"plugmon-old.dump", a + ".sha256", "x" + a, a + ".partial"})
        EXPECT_FALSE(backup::is_backup_file_name(other)) << other;
}

TEST(backup_files, prune_keeps_the_newest_and_their_companions_only) {
    temp_dir d;
    const auto t0 = std::chrono::system_clock::now();
    std::vector<std::string> names;
    for (int i = 0; i < 5; ++i) {
        names.push_back(backup::backup_file_name(t0 + std::chrono::seconds(i), i % 2 == 1));
        for (const char* suffix : {"", ".sha256", ".manifest.json"})
            std::ofstream(d.path + "/" + names.back() + suffix) << i;
    }
    std::ofstream(d.path + "/README") << "not ours";
    const auto removed = backup::prune_backups(d.path, 2);
    EXPECT_EQ(removed.size(), 3u);
    std::vector<std::string> left;
    for (const auto& e : fs::directory_iterator(d.path))
        left.push_back(e.path().filename().string());
    std::sort(left.begin(), left.end());
    std::vector<std::string> want{"README"};
    for (int i = 3; i < 5; ++i)
        for (const char* suffix : {"", ".manifest.json", ".sha256"})
            want.push_back(names[i] + suffix);
    std::sort(want.begin(), want.end());
    EXPECT_EQ(left, want);
}

TEST(backup_files, sha256_of_a_file_is_that_of_its_bytes) {
    temp_dir d;
    std::string bytes;
    for (int i = 0; i < 100000; ++i) bytes += static_cast<char>(i * 31 % 251);
    std::ofstream(d.path + "/f", std::ios::binary) << bytes;
    EXPECT_EQ(backup::file_sha256_hex(d.path + "/f"),
              plugmon::agent::to_hex(plugmon::agent::sha256(bytes)));
    std::ofstream(d.path + "/empty").flush();
    EXPECT_EQ(backup::file_sha256_hex(d.path + "/empty"),
              plugmon::agent::to_hex(plugmon::agent::sha256("")));
    EXPECT_THROW(backup::file_sha256_hex(d.path + "/missing"), backup::file_error);
}

TEST(backup_manifest, round_trips_and_names_what_is_wrong) {
    backup::manifest m;
    m.file = "plugmon-x.dump";
    m.sha256 = std::string(64, 'a');
    m.size = 42;
    m.kind = "full";
    m.schema_version = 6;
    m.tables = {{"query_rollups", 7, "2026-11-01T00:00:00.000000Z", "2026-11-02T00:00:00.000000Z"},
                {"slow_queries", 3, "2026-10-31T00:00:00.000000Z", "2026-11-01T00:00:00.000000Z"},
                {"schema_migrations", 6, "", ""}};
    const backup::time_range range = backup::data_time_range(m);
    EXPECT_EQ(range.first, "2026-10-31T00:00:00.000000Z");
    EXPECT_EQ(range.last, "2026-11-02T00:00:00.000000Z");
    const auto back = backup::manifest_from_json(backup::to_json(m), "m.json");
    EXPECT_EQ(back.schema_version, 6);
    EXPECT_EQ(back.tables.size(), 3u);
    EXPECT_EQ(backup::data_time_range(back).first, range.first);

    auto j = backup::to_json(m);
    j.erase("schema_version");
    try {
        backup::manifest_from_json(j, "m.json");
        ADD_FAILURE() << "accepted a manifest without schema_version";
    } catch (const backup::manifest_error& e) {
        EXPECT_NE(std::string(e.what()).find("\"schema_version\" is missing"), std::string::npos)
            << e.what();
    }
    j = backup::to_json(m);
    j["kind"] = "partial";
    EXPECT_THROW(backup::manifest_from_json(j, "m.json"), backup::manifest_error);
    j = backup::to_json(m);
    j["format"] = 99;
    EXPECT_THROW(backup::manifest_from_json(j, "m.json"), backup::manifest_error);
    EXPECT_THROW(backup::read_manifest("/nonexistent/m.json"), backup::manifest_error);
}

}  // namespace
