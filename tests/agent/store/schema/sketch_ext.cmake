# The C extension plugmon_sketch against its PL/pgSQL oracle (integration: a real PostgreSQL 15).
# The fixture store_sketch_extension_install copies the built extension into the server's
# directories first (as root in CI; a user who may not write them gets the tests skipped).
if(DEFINED PLUGMON_SKETCH_INSTALL_COMMAND)
  plugmon_add_test(store_sketch_ext_test SOURCES schema/sketch_ext_test.cpp
    LIBS plugmon::store_schema plugmon::aggregate Threads::Threads
    DEPENDS plugmon_sketch_extension
    LABELS integration PROPERTIES TIMEOUT 600 FIXTURES_REQUIRED plugmon_sketch_ext)
  if(TARGET store_sketch_ext_test)
    target_include_directories(store_sketch_ext_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/schema)
    add_test(NAME store_sketch_extension_install 
      COMMAND ${CMAKE_COMMAND} -E env PLUGMON_SKETCH_OPTIONAL_IF_NOT_ROOT=1 ${PLUGMON_SKETCH_INSTALL_COMMAND})
    set_tests_properties(store_sketch_extension_install PROPERTIES
      FIXTURES_SETUP plugmon_sketch_ext LABELS integration)
  endif()
endif()
