FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY pymailsrv ./pymailsrv
RUN pip install --no-cache-dir '.[postgres]'
COPY docker/entrypoint.sh /usr/local/bin/pymailsrv-entrypoint
COPY docker/pymailsrv.conf /etc/pymailsrv/pymailsrv.conf
VOLUME ["/var/lib/pymailsrv/vmail", "/var/lib/pymailsrv/spool", "/etc/pymailsrv/tls"]
EXPOSE 25 587 465 143 993 110 995
ENTRYPOINT ["pymailsrv-entrypoint"]
CMD ["serve"]
