/*
 * A stand-in notebook server for benchmarks: it follows the image contract
 * (start-notebook --base-path=... --port=... --ip=... --token=...) and answers every request
 * with a /api/status-shaped JSON body. Static and tiny, so hundreds of containers cost little.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char BODY[] =
    "{\"started\": \"2000-01-01T00:00:00Z\", \"last_activity\": \"2000-01-01T00:00:00Z\", "
    "\"connections\": 0, \"kernels\": 0}";

static void stop(int signum) { (void)signum; _exit(0); }

int main(int argc, char **argv) {
    int port = 8888;
    const char *ip = "0.0.0.0";
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--port=", 7) == 0) port = atoi(argv[i] + 7);
        else if (strncmp(argv[i], "--ip=", 5) == 0) ip = argv[i] + 5;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, stop); /* PID 1 ignores SIGTERM unless it handles it */

    int server = socket(AF_INET, SOCK_STREAM, 0);
    int on = 1;
    setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, ip, &address.sin_addr);
    if (bind(server, (struct sockaddr *)&address, sizeof address) != 0 || listen(server, 256) != 0) {
        perror("start-notebook");
        return 1;
    }
    char response[512];
    int length = snprintf(response, sizeof response,
                          "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                          strlen(BODY), BODY);
    char request[8192];
    for (;;) {
        int client = accept(server, NULL, NULL);
        if (client < 0) continue;
        if (read(client, request, sizeof request) > 0) {
            ssize_t ignored = write(client, response, length);
            (void)ignored;
        }
        close(client);
    }
}
