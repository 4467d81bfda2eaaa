# Usage pricing for `plugmonctl usage`: the pricing-file model and the invoice engine (no database).
add_library(plugmon_usage STATIC ${CMAKE_CURRENT_LIST_DIR}/pricing.cpp)
target_include_directories(plugmon_usage PUBLIC ${CMAKE_CURRENT_LIST_DIR}/..)
target_link_libraries(plugmon_usage PUBLIC plugmon_agent_core tomlplusplus::tomlplusplus PRIVATE plugmon_warnings)
