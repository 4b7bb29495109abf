// lrnn command-line tool: placeholder entry until the subcommand table lands.
int main() { return 0; }
