#!/usr/bin/env bash
# Prints the path of a launcher for Temporal's time-skipping test server (last line of stdout), installing it
# if needed. The workflow tests start it with TestWorkflowEnvironment.createTimeSkipping and an existing-path
# executable, because the SDK's own download comes from a CDN that is not a package registry. The server is
# the Java SDK's (Maven Central `io.temporal:temporal-test-server`); Maven copies its jars into the tools cache
# and a small launcher execs `java ... io.temporal.testserver.TestServer <port> [args...]`, which is exactly
# how the SDK calls the executable (the port first).
#
# The SDK gives the server 5 s to accept connections. A cold JVM on a busy 2-core machine takes about that
# long, so the install also dumps a class-data sharing archive of a real start-up (AppCDS), which brings the
# start to 1-2 s; without the archive (another JVM, a failed dump) the launcher still works, only slower.
#
#   ${BROKERFLOW_TOOLS_DIR:-$HOME/.cache/brokerflow/tools}/temporal-test-server/<version>/
#
# Environment: TEMPORAL_TEST_SERVER_PATH (use this launcher instead), BROKERFLOW_TEMPORAL_TEST_SERVER_VERSION.
set -euo pipefail
VERSION="${BROKERFLOW_TEMPORAL_TEST_SERVER_VERSION:-1.32.1}"
SLF4J_VERSION="1.7.36" # the slf4j-api the server depends on; its no-op binding keeps start-up warnings quiet
TOOLS="${BROKERFLOW_TOOLS_DIR:-$HOME/.cache/brokerflow/tools}"
target="$TOOLS/temporal-test-server/$VERSION"
launcher="$target/temporal-test-server"

log() { printf 'temporal-test-server.sh: %s\n' "$*" >&2; }
die() { printf 'temporal-test-server.sh: error: %s\n' "$*" >&2; exit 1; }

if [ -n "${TEMPORAL_TEST_SERVER_PATH:-}" ]; then
  [ -x "$TEMPORAL_TEST_SERVER_PATH" ] || die "TEMPORAL_TEST_SERVER_PATH=$TEMPORAL_TEST_SERVER_PATH is not an executable file"
  echo "$TEMPORAL_TEST_SERVER_PATH"; exit 0
fi

# Cached: the launcher exists and the JVM it was built for is still there.
cached() {
  [ -f "$target/.complete" ] && [ -x "$launcher" ] && [ -x "$(sed -n 's/^java=//p' "$target/.complete")" ]
}
if cached; then echo "$launcher"; exit 0; fi

if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || die "java and mvn are needed (Java 11+ and Maven): install them and put them on PATH"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  log "installing Debian's default-jre-headless and maven"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends default-jre-headless maven >&2
fi
java_bin="$(readlink -f "$(command -v java)")"

mkdir -p "$TOOLS/temporal-test-server"
# One install at a time per version (parallel test runs may call this together).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$TOOLS/temporal-test-server/.$VERSION.lock"
  flock 9
  if cached; then echo "$launcher"; exit 0; fi
fi

tmp="$(mktemp -d "$TOOLS/temporal-test-server/.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
log "installing the Temporal test server $VERSION (Maven Central io.temporal:temporal-test-server) into $target"
cat > "$tmp/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.brokerflow</groupId>
  <artifactId>temporal-test-server-launcher</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>io.temporal</groupId><artifactId>temporal-test-server</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-nop</artifactId><version>$SLF4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
# (Maven's quiet mode still writes colour resets; the filter keeps the log readable.)
mvn -q -B -Dstyle.color=never -f "$tmp/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp/lib" 2>&1 \
  | sed 's/\x1b\[[0-9;]*m//g' | grep -v '^$' >&2 \
  || [ "${PIPESTATUS[0]}" = 0 ] \
  || die "mvn could not fetch io.temporal:temporal-test-server:$VERSION and its dependencies"
[ -f "$tmp/lib/temporal-test-server-$VERSION.jar" ] || die "mvn did not copy temporal-test-server-$VERSION.jar"

# The launcher names the final paths: the classpath and the archive are only valid where they will live.
rm -rf "$target"; mkdir -p "$target"
mv "$tmp/lib" "$target/lib"
jvm_flags="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx512m -Xlog:disable -Xlog:all=error:stderr"
cat > "$launcher" <<EOF
#!/usr/bin/env bash
# Temporal's time-skipping test server $VERSION. Usage: temporal-test-server <port> [args...]
# -Xshare:auto uses the class-data archive when it matches this JVM and classpath, and ignores it otherwise.
exec "$java_bin" $jvm_flags -Xshare:auto -XX:SharedArchiveFile="$target/app.jsa" \\
  -cp "$target/lib/*" io.temporal.testserver.TestServer "\$@"
EOF
chmod +x "$launcher"

# The class-data archive: one real start-up of the server, dumped when it exits on SIGTERM.
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$java_bin" $jvm_flags -XX:ArchiveClassesAtExit="$target/app.jsa" -cp "$target/lib/*" \
  io.temporal.testserver.TestServer "$port" >"$tmp/cds.log" 2>&1 &
pid=$!
up=""
for _ in $(seq 1 600); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then up=1; break; fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ -n "$up" ]; then
  sleep 1 # let the gRPC services finish loading their classes
  kill -TERM "$pid"
  wait "$pid" || true
else
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  die "the test server did not start: $(tail -5 "$tmp/cds.log")"
fi
[ -s "$target/app.jsa" ] || log "warning: no class-data archive was written; the server will start more slowly"

printf 'version=%s\njava=%s\ninstalled_at=%s\n' "$VERSION" "$java_bin" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$target/.complete"
echo "$launcher"
