FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY pymailsrv ./pymailsrv
RUN pip install --no-cache-dir '.[postgres]'
VOLUME ["/var/lib/pymailsrv"]
EXPOSE 25 587 465 143 993 110 995
ENTRYPOINT ["pymailsrv"]
CMD ["--config", "/etc/pymailsrv/pymailsrv.conf", "serve"]
