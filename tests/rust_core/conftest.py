# The planted-data helper sits beside these tests.
