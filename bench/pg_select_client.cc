// The cheapest PostgreSQL client there is: connect with libpq, run one query, exit. db_bench.sh
// starts fifteen of these beside one runner to measure the floor under the sixteen-runner figure:
// what any waiter costs the machine before it does anything of its own.
#include <libpq-fe.h>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: pg_select_client CONNINFO QUERY\n");
    return 2;
  }
  PGconn* connection = PQconnectdb(argv[1]);
  int exit_code = 0;
  if (PQstatus(connection) != CONNECTION_OK) {
    std::fprintf(stderr, "%s", PQerrorMessage(connection));
    exit_code = 1;
  } else {
    PGresult* result = PQexec(connection, argv[2]);
    if (PQresultStatus(result) != PGRES_TUPLES_OK) {
      std::fprintf(stderr, "%s", PQerrorMessage(connection));
      exit_code = 1;
    }
    PQclear(result);
  }
  PQfinish(connection);
  return exit_code;
}
