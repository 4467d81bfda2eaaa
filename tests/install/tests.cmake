# ctest registration of the out-of-tree plugin test; include()d from tests/CMakeLists.txt.
# It installs this build tree into a temporary prefix and builds tests/install against it with
# the same compiler and flags (a sanitizer build needs the plugin built with the sanitizer too).
add_test(NAME install.out_of_tree_plugin
  COMMAND bash "${CMAKE_CURRENT_LIST_DIR}/run.sh" "${CMAKE_BINARY_DIR}"
    "-DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}"
    "-DCMAKE_CXX_FLAGS=${CMAKE_CXX_FLAGS}"
    "-DCMAKE_EXE_LINKER_FLAGS=${CMAKE_EXE_LINKER_FLAGS}")
set_tests_properties(install.out_of_tree_plugin PROPERTIES
  LABELS integration
  TIMEOUT 300)
