# The store's schema: agent/sql/*.sql embedded into the agent at build time, and the migrator.
# Included by agent/CMakeLists.txt after plugmon_agent_core and PkgConfig::PQXX exist.
file(GLOB PLUGMON_SQL_FILES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/sql/*.sql)
set(PLUGMON_EMBEDDED_SQL ${CMAKE_CURRENT_BINARY_DIR}/store/embedded_sql.cpp)
# Editing a .sql file regenerates the .cpp; adding or removing one re-runs the configure step
# (CONFIGURE_DEPENDS), which brings the new list into DEPENDS.
add_custom_command(
  OUTPUT ${PLUGMON_EMBEDDED_SQL}
  COMMAND ${CMAKE_COMMAND} -DSQL_DIR=${CMAKE_CURRENT_SOURCE_DIR}/sql -DOUTPUT=${PLUGMON_EMBEDDED_SQL}
          -P ${CMAKE_CURRENT_SOURCE_DIR}/store/embed_sql.cmake
  DEPENDS ${PLUGMON_SQL_FILES} ${CMAKE_CURRENT_SOURCE_DIR}/store/embed_sql.cmake
  COMMENT "Embedding the SQL migrations (agent/sql)"
  VERBATIM)

add_library(plugmon_store_sql STATIC
  ${CMAKE_CURRENT_SOURCE_DIR}/store/migrations.cpp
  ${PLUGMON_EMBEDDED_SQL})
target_include_directories(plugmon_store_sql PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(plugmon_store_sql
  PUBLIC plugmon_agent_core PkgConfig::PQXX
  PRIVATE plugmon_warnings)
