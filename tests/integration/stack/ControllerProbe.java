import java.io.FileInputStream;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.common.acl.AclBindingFilter;

/**
 * Asks a KRaft controller directly (KIP-919: bootstrap.controllers) for every ACL, as the client
 * configured in the properties file given; prints "OK <count>" or "REFUSED <reason>". Run as a
 * single-file program on the broker's classpath (librdkafka cannot talk to controllers).
 */
public class ControllerProbe {
    public static void main(String[] args) throws Exception {
        Properties config = new Properties();
        try (FileInputStream in = new FileInputStream(args[0])) {
            config.load(in);
        }
        try (Admin admin = Admin.create(config)) {
            int count = admin.describeAcls(AclBindingFilter.ANY).values().get(30, TimeUnit.SECONDS).size();
            System.out.println("OK " + count);
        } catch (Exception e) {
            System.out.println("REFUSED " + e.getMessage());
        }
    }
}
