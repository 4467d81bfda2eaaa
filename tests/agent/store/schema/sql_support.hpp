// Shared by the store's SQL integration tests: a fresh migrated database per test, hex, random sketches.
#pragma once

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "aggregate/sketch.hpp"
#include "store/schema/migrations.hpp"
#include "support/pg_server.hpp"

namespace plugmon::test {

/// A fresh, empty database on the shared server, named after the running test.
inline std::string fresh_database() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->test_suite_name()) + "_" + info->name();
    for (char& ch : name) ch = std::isalnum(static_cast<unsigned char>(ch)) ? std::tolower(ch) : '_';
    return pg_server::shared().create_database(name.substr(0, 63));
}

/// A fresh database with every embedded migration applied.
inline std::string migrated_database() {
    const std::string url = fresh_database();
    pqxx::connection c(url);
    agent::store::migrate(c, false, "test");
    return url;
}

inline std::string to_hex(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (const char ch : bytes) {
        const auto b = static_cast<unsigned char>(ch);
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    return out;
}

/// SQL for the bytea with these bytes.
inline std::string bytea_literal(std::string_view bytes) { return "decode('" + to_hex(bytes) + "', 'hex')"; }

/// Value distributions for random sketches.
enum class shape { lognormal, bimodal, pareto, tiny, near_2_40, top_of_u64 };
constexpr shape all_shapes[] = {shape::lognormal, shape::bimodal, shape::pareto,
                                shape::tiny,      shape::near_2_40, shape::top_of_u64};

inline std::uint64_t draw(std::mt19937_64& rng, shape s) {
    switch (s) {
        case shape::lognormal:
            return static_cast<std::uint64_t>(std::lognormal_distribution<double>(13.8, 1.2)(rng));
        case shape::bimodal: {  // a fast cached path around 60 us and a slow one around 25 ms
            const bool slow = std::bernoulli_distribution(0.2)(rng);
            return static_cast<std::uint64_t>(
                std::lognormal_distribution<double>(slow ? 17.0 : 11.0, 0.3)(rng));
        }
        case shape::pareto: {  // x_m = 2 us, alpha = 1.1: a heavy tail up to about 2^50
            const double u = std::uniform_real_distribution<double>(1e-12, 1.0)(rng);
            return static_cast<std::uint64_t>(std::min(2000.0 * std::pow(u, -1.0 / 1.1), 1e15));
        }
        case shape::tiny: return std::uniform_int_distribution<std::uint64_t>(0, 127)(rng);
        case shape::near_2_40:
            return (std::uint64_t{1} << 40) + std::uniform_int_distribution<std::uint64_t>(0, 1u << 30)(rng) -
                   (1u << 29);
        case shape::top_of_u64:  // not durations any more: exercises the unsigned handling
            return std::uniform_int_distribution<std::uint64_t>(std::uint64_t{1} << 62, ~std::uint64_t{0})(rng);
    }
    return 0;
}

/// A sketch of `values` draws from `s` (0 values: an empty sketch).
inline agent::dd_sketch random_sketch(std::mt19937_64& rng, shape s, int values) {
    agent::dd_sketch sk;
    for (int k = 0; k < values; ++k) sk.add(draw(rng, s));
    return sk;
}

/// Runs `INSERT INTO <head> VALUES <row>, <row>...` in chunks of 200 rows.
inline void insert_rows(pqxx::transaction_base& tx, const std::string& head,
                        const std::vector<std::string>& rows) {
    for (std::size_t at = 0; at < rows.size(); at += 200) {
        std::string sql = "INSERT INTO " + head + " VALUES ";
        for (std::size_t k = at; k < std::min(rows.size(), at + 200); ++k)
            sql += (k == at ? "(" : ", (") + rows[k] + ")";
        tx.exec(sql);
    }
}

}  // namespace plugmon::test
