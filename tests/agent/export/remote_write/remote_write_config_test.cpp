// [[remote_write]] configuration: accepted tables and defaults, and each refusal naming its key.
#include "config/config.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <sys/stat.h>

using namespace plugmon::agent;

namespace {

struct remote_write_config : ::testing::Test {
    std::string dir;
    void SetUp() override {
        std::string t = (std::filesystem::temp_directory_path() / "plugmon-rwcfg-XXXXXX").string();
        dir = ::mkdtemp(t.data());
    }
    void TearDown() override { std::filesystem::remove_all(dir); }
    std::string file(const std::string& name, const std::string& text, mode_t mode = 0600) {
        const std::string p = dir + "/" + name;
        std::ofstream(p) << text;
        ::chmod(p.c_str(), mode);
        return p;
    }
    config parse(const std::string& toml, std::vector<std::string> extra = {}) {
        const std::string p = file(
            "agent.toml", "spool_dir = \"" + dir + "/state/spool\"\n" + "host = \"h1\"\n" + toml);
        std::vector<std::string> args = {"plugmon-agent", "--config", p};
        args.insert(args.end(), extra.begin(), extra.end());
        std::vector<const char*> argv;
        for (const auto& a : args) argv.push_back(a.c_str());
        return parse_command_line(int(argv.size()), argv.data());
    }
    /// The message of the config_error `toml` raises ("" if none).
    std::string refusal(const std::string& toml) {
        try {
            parse(toml);
        } catch (const config_error& e) {
            return e.what();
        }
        return "";
    }
};

}  // namespace

TEST_F(remote_write_config, a_full_table_is_read_with_headers_from_files) {
    const auto token = file("token", "s3cret\n");
    const auto key = file("key", "k3y");
    const config c = parse(R"([[remote_write]]
url = "http://127.0.0.1:9090/api/v1/write"
name = "central"
bearer_token_file = ")" + token +
                           R"("
headers = { X-Scope-OrgID = "team-a" }
header_files = { X-Api-Key = ")" +
                           key + R"(" }
native_histograms = false
max_samples_per_send = 500
timeout = "5s"
queue_windows = 8
spool_max_bytes = "16MiB"
external_labels = { region = "eu-1" }

[[remote_write]]
url = "http://vm.example:8428/api/v1/write"
)");
    ASSERT_EQ(c.remote_write.size(), 2u);
    const auto& r = c.remote_write[0];
    EXPECT_EQ(r.name, "central");
    EXPECT_FALSE(r.native_histograms);
    EXPECT_EQ(r.max_samples_per_send, 500u);
    EXPECT_EQ(r.timeout, std::chrono::seconds{5});
    EXPECT_EQ(r.queue_windows, 8u);
    EXPECT_EQ(r.spool_max_bytes, 16u << 20);
    const std::vector<std::pair<std::string, std::string>> headers = {
        {"Authorization", "Bearer s3cret"}, {"X-Api-Key", "k3y"}, {"X-Scope-OrgID", "team-a"}};
    auto got = r.headers;  // in key order, as TOML tables are read
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, headers);
    const std::vector<std::pair<std::string, std::string>> labels = {{"region", "eu-1"},
                                                                     {"host", "h1"}};
    EXPECT_EQ(r.external_labels, labels);
    EXPECT_EQ(r.spool_dir, dir + "/state/remote_write/central");
    EXPECT_EQ(c.remote_write[1].name, "vm.example_8428");
    EXPECT_TRUE(c.remote_write[1].native_histograms);
}

TEST_F(remote_write_config, the_flag_gives_one_receiver) {
    const config c = parse("", {"--remote-write", "http://localhost:9090/api/v1/write"});
    ASSERT_EQ(c.remote_write.size(), 1u);
    EXPECT_EQ(c.remote_write[0].name, "localhost_9090");
}

TEST_F(remote_write_config, bad_values_are_refused_naming_the_key) {
    const auto open_token = file("open", "s3cret", 0644);
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"[[remote_write]]\nurl = \"ftp://x\"\n", "is not an http:// or https:// URL"},
        {"[[remote_write]]\nurl = \"https://x\"\ntls_ca_file = \"/nonexistent.pem\"\n",
         "remote_write[0].tls_ca_file"},
        {"[[remote_write]]\nname = \"x\"\n", "url is missing"},
        {"[[remote_write]]\nurl = \"http://x\"\nheaders = { Content-Type = \"a\" }\n",
         "\"Content-Type\" is reserved"},
        {"[[remote_write]]\nurl = \"http://x\"\nheaders = { user-agent = \"a\" }\n", "is reserved"},
        {"[[remote_write]]\nurl = \"http://x\"\nbearer_token_file = \"" + open_token + "\"\n",
         "accessible by group or others"},
        {"[[remote_write]]\nurl = \"http://x\"\nmax_samples_per_send = 0\n",
         "remote_write[0].max_samples_per_send"},
        {"[[remote_write]]\nurl = \"http://x\"\ntimeout = 5\n", "has no unit"},
        {"[[remote_write]]\nurl = \"http://x\"\nexternal_labels = { plugin = \"a\" }\n",
         "is a label of plugmon's own series"},
        {"[[remote_write]]\nurl = \"http://x\"\nexternal_labels = { __x = \"a\" }\n",
         "is not a label name"},
        {"[[remote_write]]\nurl = \"http://x\"\nbatch = 3\n", "remote_write[0].batch: unknown key"},
        {"[[remote_write]]\nurl = \"http://x\"\n[[remote_write]]\nurl = \"http://x\"\n",
         "is used twice"},
        {"remote_write = \"http://x\"\n", "expected [[remote_write]] tables"},
    };
    for (const auto& [toml, want] : cases) {
        const std::string got = refusal(toml);
        EXPECT_NE(got.find(want), std::string::npos) << toml << "\n=> " << got;
        EXPECT_NE(got.find("remote_write"), std::string::npos) << got;
    }
}
