# Serves "$GREETING from <file created by predeploy>" on $PORT.
mkdir -p /tmp/www
printf '%s from %s' "$GREETING" "$(cat /srv/predeploy.txt 2>/dev/null || echo no-predeploy)" > /tmp/www/index.html
exec httpd -f -p "$PORT" -h /tmp/www
