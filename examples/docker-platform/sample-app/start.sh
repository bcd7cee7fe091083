# Serves body.txt (plus $GREETING, when set) on $PORT with busybox httpd.
echo "started $DYNO on port $PORT"
mkdir -p /tmp/www
{ cat /srv/body.txt; printf '%s' "${GREETING:+ $GREETING}"; } > /tmp/www/index.html
exec httpd -f -v -p "$PORT" -h /tmp/www
